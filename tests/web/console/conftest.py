"""Fixtures of the console tests: one real patrol run (the shared SSH password-guessing capture)
in a runs folder, a guard policy that holds block_ip for a person's approval, a signing key, and
the app with the console configured through its environment variables."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mamori.cases import keys
from mamori.store import Store
from mamori.web.app import create_app
from mamori.web.console.runs import Runs
from mamori.web.events import Broker

SSHGUESS = "zeek-btest/Traces/ssh/sshguess.pcap"  # SSH password guessing: one incident

# block_ip (the SSH-guessing profile's action) waits for a person: the console's approve form.
POLICY = """
protected:
  own: [10.0.0.0/8]
approval: [block_ip, block_domain, sinkhole, rate_limit, quarantine]
"""


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "signing-key.pem"
    keys.generate(path)
    return path


def wait_run(runs: Runs, run_id: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = runs.get(run_id)
        assert run is not None
        if run.state != "running":
            assert run.state == "done", run.status
            return
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still running after {timeout} s")


@dataclass
class Made:
    """A run the console's runner made, with what it published and handed to ``after``."""

    runs: Runs
    broker: Broker
    run_id: str
    after: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture(scope="session")
def made(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("runs-made")
    broker = Broker()
    seen: list[tuple[str, dict[str, Any]]] = []
    runs = Runs(root, broker, (data_dir,), after=lambda run, report: seen.append((run.id, report)))
    run = runs.start([runs.check_capture(str(data_dir / SSHGUESS))], by="fixture")
    wait_run(runs, run.id)
    deadline = time.monotonic() + 30  # ``after`` runs once the status says done
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    return Made(runs, broker, run.id, seen)


@pytest.fixture(scope="session")
def patrolled(made: Made) -> Path:
    """A runs folder holding one finished run over the SSH capture, made by the console's runner."""
    return made.runs.folder


@pytest.fixture
def runs_dir(patrolled: Path, tmp_path: Path) -> Path:
    """A copy per test (cases and evidence write beside the runs; a test must not see another's)."""
    out = tmp_path / "data" / "runs"
    shutil.copytree(patrolled, out, symlinks=True)
    return out


@pytest.fixture
def app(  # type: ignore[no-untyped-def]
    store: Store,
    runs_dir: Path,
    data_dir: Path,
    policy_file: Path,
    signing_key: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("MAMORI_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("MAMORI_CAPTURES", str(data_dir))
    monkeypatch.setenv("MAMORI_POLICY", str(policy_file))
    monkeypatch.setenv("MAMORI_SIGNING_KEY", str(signing_key))
    return create_app(store)
