"""The console end to end in a real headless Chromium (Debian's chromium + chromedriver, driven by
Selenium): log in, run a patrol on a shared capture, watch the incident and the decision it leads
to arrive over server-sent events without a reload, open the incident, approve the decision, open
a case, build and download the evidence package, and check it with ``mamori evidence verify``.

The server is the real thing: ``uvicorn`` in its own process on a free loopback port, over a
SQLite state database and data home of the test's own. Screenshots of each step are kept in
``test-artifacts/web-console/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from mamori.store import Store
from mamori.web import auth

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "web-console"
SSHGUESS = "zeek-btest/Traces/ssh/sshguess.pcap"
PASSWORD = "a long console passphrase"
MAMORI = shutil.which("mamori") or str(Path(sys.executable).with_name("mamori"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str
    home: Path
    env: dict[str, str]


@pytest.fixture
def server(
    tmp_path: Path, data_dir: Path, policy_file: Path, signing_key: Path
) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir()
    state = f"sqlite:///{home / 'state.db'}"
    store = Store(state)
    auth.add_user(store, "rita", "responder", PASSWORD)
    store.close()
    env = os.environ | {
        "MAMORI_STATE_URL": state,
        "XDG_DATA_HOME": str(home / "xdg"),
        "MAMORI_RUNS_DIR": str(home / "runs"),
        "MAMORI_CAPTURES": str(data_dir),
        "MAMORI_POLICY": str(policy_file),
        "MAMORI_SIGNING_KEY": str(signing_key),
        # cookies Secure as by default: a browser keeps them from a loopback origin over HTTP
        "MAMORI_INSECURE_COOKIES": "0",
    }
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "mamori.web.app:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/login", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "console server did not start:\n" + (tmp_path / "server.log").read_text()
                    ) from None
                time.sleep(0.2)
        yield Server(url, home, env)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[WebDriver, Path]]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, (
        "Debian's chromium and chromium-driver are needed (scripts/setup-system)"
    )
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1366,900",  # a laptop screen
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        opts.add_argument(flag)
    opts.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    drv = webdriver.Chrome(options=opts, service=Service(driver))
    drv.set_page_load_timeout(60)
    try:
        yield drv, downloads
    finally:
        drv.quit()


def shot(drv: WebDriver, name: str) -> None:
    """The whole page at laptop width (the window grows to the page's height for the picture)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = int(drv.execute_script("return document.documentElement.scrollHeight;"))
    drv.set_window_size(1366, max(900, min(height + 100, 6000)))
    drv.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    drv.set_window_size(1366, 900)


def mark_page(drv: WebDriver) -> None:
    """Tag the loaded document; the tag survives only as long as no reload happens."""
    drv.execute_script("window.__sameDocument = true;")


def same_page(drv: WebDriver) -> bool:
    return bool(drv.execute_script("return window.__sameDocument === true;"))


def test_console_end_to_end(
    server: Server, browser: tuple[WebDriver, Path], data_dir: Path
) -> None:
    drv, downloads = browser
    wait = WebDriverWait(drv, 120)

    # --- log in: the console sends an unauthenticated visitor to its login form
    drv.get(server.url + "/decisions")
    wait.until(ec.presence_of_element_located((By.ID, "username")))
    assert "/login" in drv.current_url
    assert drv.find_element(By.NAME, "csrf_token").get_attribute("value")
    shot(drv, "01-login")
    drv.find_element(By.ID, "username").send_keys("rita")
    drv.find_element(By.ID, "password").send_keys(PASSWORD)
    drv.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "pend-h")))
    assert drv.current_url.endswith("/decisions")  # back where the visitor wanted to go
    assert not drv.find_elements(By.CSS_SELECTOR, 'tbody[data-live="decision"] tr[data-id]')
    wait.until(ec.text_to_be_present_in_element((By.ID, "stream-state"), "on"))
    mark_page(drv)
    decisions_tab = drv.current_window_handle

    # --- a second tab on the alerts (none yet)
    drv.switch_to.new_window("tab")
    drv.get(server.url + "/alerts")
    wait.until(ec.text_to_be_present_in_element((By.ID, "stream-state"), "on"))
    assert drv.find_element(By.CSS_SELECTOR, "caption .count").text == "0"
    mark_page(drv)
    alerts_tab = drv.current_window_handle

    # --- in a third tab, start a patrol on the shared capture from the overview
    drv.switch_to.new_window("tab")
    drv.get(server.url + "/")
    wait.until(ec.text_to_be_present_in_element((By.ID, "stream-state"), "on"))
    drv.find_element(By.ID, "capture").send_keys(str(data_dir / SSHGUESS))
    drv.find_element(By.CSS_SELECTOR, "form.run button").click()
    wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, 'tbody[data-live="run"] tr[data-id]'))
    )
    wait.until(ec.text_to_be_present_in_element((By.ID, "stream-state"), "on"))
    mark_page(drv)
    # the run finishes, and its incident arrives in the incident table over SSE, no reload
    incident_row = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, 'tbody[data-live="incident"] tr[data-id]'))
    )
    incident = incident_row.get_attribute("data-id")
    assert incident and incident.startswith("INC-")
    assert "Password Guessing" in incident_row.text
    wait.until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, 'tbody[data-live="run"] .state'), "done")
    )
    assert same_page(drv), "the overview reloaded instead of receiving events"
    shot(drv, "02-overview-after-run")

    # --- its alert appeared on the alerts tab without a reload
    drv.switch_to.window(alerts_tab)
    alert_row = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, 'tbody[data-live="alert"] tr:not(.none)'))
    )
    assert same_page(drv), "the alerts page reloaded instead of receiving events"
    assert "bruteforce.ssh" in alert_row.text and "192.168.56.1" in alert_row.text
    assert drv.find_element(By.CSS_SELECTOR, "caption .count").text == "1"
    shot(drv, "03a-alert-arrived-live")

    # --- the decision the run led to appeared on the first tab without a reload
    drv.switch_to.window(decisions_tab)
    row = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, 'tbody[data-live="decision"] tr[data-id]'))
    )
    assert same_page(drv), "the decisions page reloaded instead of receiving events"
    assert "block_ip" in row.text and "192.168.56.1" in row.text and "pending" in row.text
    assert row.find_elements(By.CSS_SELECTOR, "button.approve")  # responder: forms included
    assert drv.find_element(By.CSS_SELECTOR, "#pend-h ~ table caption .count").text == "1"
    decision = row.get_attribute("data-id")
    assert (
        "approval" in drv.find_element(By.ID, "live").text
        or decision in drv.find_element(By.ID, "live").text
    )
    shot(drv, "03b-decision-arrived-live")

    # --- open the incident: timeline, entity graph, ATT&CK names, evidence, the decision
    row.find_element(By.LINK_TEXT, incident).click()
    wait.until(ec.presence_of_element_located((By.ID, "tl-h")))
    page = drv.find_element(By.TAG_NAME, "main").text
    assert "T1110.001" in page and "Brute Force: Password Guessing" in page
    assert "credential-access" in page
    assert drv.find_elements(By.CSS_SELECTOR, "svg.graph .node.attacker")
    assert drv.find_elements(By.CSS_SELECTOR, "svg.graph .node.victim")
    shot(drv, "04-incident")

    # --- approve the decision from the incident page (a CSRF-checked form)
    drv.find_element(By.CSS_SELECTOR, f'tr[data-id="{decision}"] button.approve').click()
    wait.until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, f'tr[data-id="{decision}"] .state'), "approved by rita"
        )
    )
    shot(drv, "05-approved")

    # --- open a case, build the signed evidence package, download it
    drv.find_element(By.XPATH, "//button[contains(., 'Open a case')]").click()
    wait.until(ec.presence_of_element_located((By.ID, "ev-h")))
    drv.find_element(By.XPATH, "//button[contains(., 'evidence package')]").click()
    link = wait.until(ec.element_to_be_clickable((By.PARTIAL_LINK_TEXT, "package 0 (zip)")))
    shot(drv, "06-case")
    link.click()
    deadline = time.monotonic() + 60
    zips: list[Path] = []
    while time.monotonic() < deadline:
        zips = [p for p in downloads.glob("*.zip") if p.stat().st_size > 0]
        if zips and not list(downloads.glob("*.crdownload")):
            break
        time.sleep(0.2)
    assert zips, f"no evidence zip downloaded into {downloads}: {list(downloads.iterdir())}"
    verified = subprocess.run(
        [MAMORI, "evidence", "verify", str(zips[0])],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "OK" in verified.stdout

    # --- the keyboard: the first Tab reaches the skip link; "g" then "a" opens the alerts
    drv.get(server.url + "/")
    wait.until(ec.presence_of_element_located((By.ID, "traffic-h")))
    assert drv.find_elements(By.CSS_SELECTOR, "svg.chart rect")  # charts drawn from the run
    shot(drv, "07-overview")
    body = drv.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert drv.switch_to.active_element.get_attribute("class") == "skip"
    drv.switch_to.active_element.send_keys(Keys.ENTER)
    assert drv.switch_to.active_element.get_attribute("id") == "main"
    ActionChains(drv).send_keys("g").send_keys("a").perform()
    wait.until(ec.presence_of_element_located((By.ID, "f-detector")))
    assert drv.current_url.endswith("/alerts")
    assert "bruteforce.ssh" in drv.find_element(By.CSS_SELECTOR, 'tbody[data-live="alert"]').text
    shot(drv, "08-alerts")

    # --- the approval is in the ledger the CLI reads
    listed = subprocess.run(
        [MAMORI, "respond", "list", "--format", "json"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert f'"id": "{decision}"' in listed.stdout and '"state": "approved"' in listed.stdout
    assert '"by": "rita"' in listed.stdout
