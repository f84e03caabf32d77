"""What the console's forms do, each a call into a stage followed by an event for open pages.

Kept apart from the page handlers so the REST API can publish the same events when it calls the
same stage functions: a decision approved through ``/api/`` shows up on an open console too.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from mamori.respond.ledger import Entry, Ledger
from mamori.web.console.runs import Run
from mamori.web.events import Broker


def broker(app: FastAPI) -> Broker:
    if not hasattr(app.state, "events"):
        app.state.events = Broker()
    return app.state.events  # type: ignore[no-any-return]


def decision_row(entry: Entry) -> dict[str, Any]:
    """The fields of a decision a console table shows (also the ``decision`` event's data)."""
    return entry.to_json()


def publish_decisions(app: FastAPI, entries: list[Entry], change: str) -> None:
    events = broker(app)
    for e in entries:
        events.publish("decision", decision_row(e) | {"change": change})


def plan_after_run(app: FastAPI, run: Run, report: dict[str, Any]) -> list[Entry]:
    """Plan a finished run's incidents into decisions, when the console has a policy file."""
    from mamori.respond.policy import load_policy

    policy_path = app.state.console.policy
    if policy_path is None:
        return []
    entries = Ledger(app.state.store, load_policy(policy_path)).plan(report)
    publish_decisions(app, entries, "planned")
    return entries


def approve(app: FastAPI, ident: str, by: str) -> Entry:
    policy = _policy(app)
    entry = Ledger(app.state.store, policy).approve(ident, by=by)
    publish_decisions(app, [entry], "approved")
    return entry


def reject(app: FastAPI, ident: str, by: str) -> Entry:
    entry = Ledger(app.state.store).reject(ident, by=by)
    publish_decisions(app, [entry], "rejected")
    return entry


def _policy(app: FastAPI) -> Any:
    from mamori.respond.policy import load_policy

    path = app.state.console.policy
    return load_policy(path) if path is not None else None
