"""The console's pages over a real patrol run: who may see and do what, and that each page shows
what the stages hold (the report's incidents and alerts, the ledger's decisions, the cases)."""

from __future__ import annotations

import re
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mamori.cases.verify import verify
from mamori.respond.decision import State
from mamori.respond.ledger import Ledger
from mamori.store import Store
from mamori.web import auth

PASSWORD = "correct horse battery staple"
PAGES = ("/", "/incidents", "/alerts", "/decisions", "/cases", "/intel", "/hunt")


def login(client: TestClient, name: str, password: str = PASSWORD, next: str = "/") -> str:
    """Log in through the form; returns the session's CSRF token (from a page's meta tag)."""
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    r = client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": token[1], "next": next},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    page = client.get("/")
    meta = re.search(r'name="csrf-token" content="([^"]*)"', page.text)
    assert meta and meta[1]
    return meta[1]


@pytest.fixture
def users(store: Store) -> None:
    for role in auth.Role:
        auth.add_user(store, role.value, role.value, PASSWORD)


def the_incident(app) -> dict:  # type: ignore[no-untyped-def]
    found = app.state.runs.incidents()
    assert len(found) == 1
    return found[0][1]


def plan(app) -> str:  # type: ignore[no-untyped-def]
    """Plan the run's incident into decisions the way a finished run does; the pending one's id."""
    from mamori.web.console.work import plan_after_run

    run, report = next(app.state.runs.finished())
    entries = plan_after_run(app, run, report)
    pending = [e for e in entries if e.state is State.pending]
    assert len(pending) == 1
    return pending[0].id


@pytest.mark.parametrize("path", (*PAGES, "/events", "/incidents/INC-89161f3b6e6e"))
def test_a_page_without_a_session_sends_to_the_login_form(client: TestClient, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")


def test_login_needs_the_forms_csrf_token_and_the_right_password(
    client: TestClient, users: None
) -> None:
    r = client.post(
        "/login",
        data={"username": "analyst", "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "session" not in r.cookies
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)[1]  # type: ignore[index]
    r = client.post(
        "/login",
        data={"username": "analyst", "password": "wrong", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 401 and "Wrong user name or password" in r.text


def test_login_never_redirects_off_site(client: TestClient, users: None) -> None:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)[1]  # type: ignore[index]
    r = client.post(
        "/login",
        data={
            "username": "analyst",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_an_analyst_with_skip_link_and_headers(
    client: TestClient, users: None, path: str
) -> None:
    login(client, "analyst")
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert 'href="#main"' in r.text and 'id="main"' in r.text
    assert 'accesskey="o"' in r.text and 'aria-current="page"' in r.text
    assert '<th scope="col">' in r.text or path == "/hunt"


def test_a_partner_account_gets_no_console_session(client: TestClient, users: None) -> None:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)[1]  # type: ignore[index]
    r = client.post(
        "/login",
        data={"username": "partner", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "TAXII only" in r.text
    for path in PAGES:
        assert client.get(path, follow_redirects=False).status_code == 303


def test_overview_shows_the_run_severities_charts_and_top_talkers(
    client: TestClient, users: None, app
) -> None:  # type: ignore[no-untyped-def]
    login(client, "analyst")
    inc = the_incident(app)
    html = client.get("/").text
    assert inc["id"] in html and inc["title"] in html
    run, report = next(app.state.runs.finished())
    assert run.id in html
    assert "<td>zeek-btest/Traces/ssh/sshguess.pcap</td>" in html  # named within its folder
    assert html.count('class="chart"') >= 2  # severity bar and traffic (and alerts)
    bars = re.search(r'aria-label="Connections over time[^"]*".*?</svg>', html, re.S)
    assert bars and bars[0].count("<rect") == len(report["traffic"]["series"])
    for attacker in inc["entities"]["attackers"]:
        assert f"<code>{attacker}</code>" in html


def test_incident_page_has_timeline_graph_attack_names_and_evidence(
    client: TestClient, users: None, app
) -> None:  # type: ignore[no-untyped-def]
    login(client, "analyst")
    inc = the_incident(app)
    html = client.get(f"/incidents/{inc['id']}").text
    for tid, name in inc["technique_names"].items():
        assert tid in html and name in html
    assert 'class="graph"' in html and 'class="node attacker"' in html
    for alert in inc["alerts"]:
        for uid in alert["evidence"]["uids"]:
            assert uid in html
    assert client.get("/incidents/INC-000000000000").status_code == 404


def test_alert_filters_narrow_the_table(client: TestClient, users: None, app) -> None:  # type: ignore[no-untyped-def]
    login(client, "analyst")
    inc = the_incident(app)
    detector = inc["alerts"][0]["detector"]
    first = inc["alerts"][0]["first_seen"]

    def count(query: str) -> int:
        html = client.get("/alerts" + query).text
        return int(re.search(r'<caption><span class="count">(\d+)</span> alert', html)[1])  # type: ignore[index]

    total = len(inc["alerts"])
    assert count("") == total
    assert count(f"?detector={detector}") == total
    assert count("?detector=no.such.detector") == 0
    other = next(s for s in ("critical", "high", "medium", "low") if s != inc["severity"])
    assert count(f"?severity={inc['severity']}") == total and count(f"?severity={other}") == 0
    assert count("?since=2099-01-01") == 0 and count(f"?until={first[:10]}T00:00:00Z") == 0
    assert count(f"?since={first[:10]}") == total
    assert "not a date" in client.get("/alerts?since=yesterday").text


def test_a_responder_approves_through_the_form_and_the_ledger_records_it(
    client: TestClient, users: None, app, store: Store
) -> None:  # type: ignore[no-untyped-def]
    ident = plan(app)
    csrf = login(client, "responder")
    html = client.get("/decisions").text
    assert ident in html and f'action="/decisions/{ident}/approve"' in html
    seen = len(app.state.events.since(0))
    r = client.post(
        f"/decisions/{ident}/approve", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    entry = Ledger(store).get(ident)
    assert entry.state is State.approved and entry.by == "responder"
    new = app.state.events.since(0)[seen:]
    assert [(e.kind, e.data["id"], e.data["change"]) for e in new] == [
        ("decision", ident, "approved")
    ]
    again = client.post(f"/decisions/{ident}/reject", data={"csrf_token": csrf})
    assert again.status_code == 409 and "only pending" in again.text


def test_approval_needs_the_responder_role_and_the_csrf_token(
    client: TestClient, users: None, app, store: Store
) -> None:  # type: ignore[no-untyped-def]
    ident = plan(app)
    csrf = login(client, "analyst")
    assert 'action="/decisions/' not in client.get("/decisions").text  # no forms for an analyst
    r = client.post(f"/decisions/{ident}/approve", data={"csrf_token": csrf})
    assert r.status_code == 403
    client.cookies.clear()
    login(client, "responder")
    r = client.post(f"/decisions/{ident}/reject", data={"csrf_token": "not-it"})
    assert r.status_code == 403
    assert Ledger(store).get(ident).state is State.pending


def test_case_evidence_package_downloads_and_verifies(
    client: TestClient, users: None, app, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "analyst")
    inc = the_incident(app)
    r = client.post(
        "/cases", data={"incident": inc["id"], "csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    case_url = r.headers["location"]
    case_id = case_url.rsplit("/", 1)[1]
    assert inc["id"] in client.get(case_url).text
    assert case_id in client.get("/cases").text
    r = client.post(f"{case_url}/evidence", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    z = client.get(f"{case_url}/packages/0.zip")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    assert zipfile.ZipFile(BytesIO(z.content)).namelist()
    (tmp_path / "pkg.zip").write_bytes(z.content)
    assert verify(tmp_path / "pkg.zip").ok
    assert client.get(f"{case_url}/packages/1.zip").status_code == 404
    note = "Called the host owner <b>at 10:02</b>"
    r = client.post(f"{case_url}/notes", data={"text": note, "csrf_token": csrf})
    assert r.status_code == 200 and "analyst</strong>" in r.text
    assert "Called the host owner &lt;b&gt;at 10:02&lt;/b&gt;" in r.text
    assert "case.note" in r.text  # in the custody log too
    assert (
        client.post(f"{case_url}/notes", data={"text": " ", "csrf_token": csrf}).status_code == 400
    )
    report = client.get(f"{case_url}/reports/technical.html")
    assert report.status_code == 200 and inc["id"] in report.text


def test_hunt_runs_sql_over_the_runs_lake(client: TestClient, users: None, app) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "analyst")
    _, report = next(app.state.runs.finished())
    html = client.post(
        "/hunt", data={"sql": "SELECT count(*) AS n FROM conn", "csrf_token": csrf}
    ).text
    assert f"<td>{report['summary']['connections']}</td>" in html
    html = client.post(
        "/hunt", data={"sql": "SELECT * FROM read_csv('/etc/passwd')", "csrf_token": csrf}
    ).text
    assert 'class="error"' in html and "root:" not in html


def test_a_run_is_refused_for_a_capture_outside_the_allowed_folders(
    client: TestClient, users: None, app
) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "analyst")
    before = len(app.state.runs.all())
    for capture in ("/etc/passwd", "/no/such/file.pcap", ""):
        r = client.post("/runs", data={"capture": capture, "csrf_token": csrf})
        assert r.status_code in (400, 422)
    assert len(app.state.runs.all()) == before


def test_intel_and_partners_page_lists_the_store_and_the_partners(
    client: TestClient,
    users: None,
    store: Store,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mamori.intel.schema import default_store

    # an intel store of this test's own: other tests' patrols must not match these indicators
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    from mamori.intel.store import import_files, read
    from mamori.share import partners

    feed = data_dir / "threat-intel" / "ipsum" / "levels" / "8.txt"
    import_files([feed], default_store(), tlp="clear", source="ipsum-8")
    partners.add(store, "cert-east", ["shared"], open_tlps=("clear", "green"))
    login(client, "analyst")
    html = client.get("/intel").text
    total = read(default_store()).height
    assert total > 0 and f"{total} indicator(s)" in html
    assert '<th scope="row">ipsum-8</th>' in html
    assert "cert-east" in html and "clear, green" in html


def test_hostile_text_in_a_report_is_shown_not_run(
    client: TestClient, users: None, app, runs_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    """Alert summaries, titles and names come from traffic an attacker shapes: always escaped."""
    import json

    evil = "<script>document.title='owned'</script>"
    (report_path,) = runs_dir.glob("*/report.json")
    report = json.loads(report_path.read_text())
    inc = report["incidents"][0]
    inc["title"] = evil
    inc["entities"]["domains"] = [evil]
    inc["alerts"][0]["summary"] = evil
    inc["alerts"][0]["domains"] = [evil]
    report_path.write_text(json.dumps(report))
    login(client, "analyst")
    for path in ("/", "/incidents", "/alerts", f"/incidents/{inc['id']}"):
        html = client.get(path).text
        assert evil not in html, path
        assert "&lt;script&gt;" in html, path
