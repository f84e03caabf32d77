"""Fixtures of the API tests: the console's (one real patrol run over the shared SSH-guessing
capture, a policy that holds block_ip for approval, a signing key, the app configured by its
environment), plus a decision planned from that run and a case opened on its incident."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

import web.console.conftest as _console
from mamori.respond.ledger import Ledger
from mamori.respond.policy import load_policy

# Every fixture of the console's conftest (the same run and settings its tests use), whatever they
# are named: pytest finds fixtures among a conftest's globals.
globals().update(
    {
        name: obj
        for name, obj in vars(_console).items()
        if type(obj).__name__ == "FixtureFunctionDefinition" and name not in ("store", "client")
    }
)


@pytest.fixture
def world(client: TestClient, accounts: Any, policy_file: Any) -> dict[str, str]:
    """Ids the routes need: the run, its incident, a pending decision, an open case."""
    app = client.app
    runs = app.state.runs  # type: ignore[attr-defined]
    run, report = next(runs.finished())
    incident = report["incidents"][0]["id"]
    entries = Ledger(app.state.store, load_policy(policy_file)).plan(report)  # type: ignore[attr-defined]
    pending = [e.id for e in entries if str(e.state) == "pending"]
    assert pending, [e.to_json() for e in entries]
    r = client.post("/api/cases", json={"incidents": [incident]}, headers=accounts.headers("admin"))
    assert r.status_code == 201, r.text
    return {
        "run": run.id,
        "incident": incident,
        "decision": pending[0],
        "decision2": pending[-1],
        "case": r.json()["id"],
    }
