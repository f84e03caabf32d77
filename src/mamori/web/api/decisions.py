"""Response decisions: read them (analyst), approve or reject a pending one (responder).

Approval goes through :mod:`mamori.web.console.work`, i.e. ``Ledger.approve`` under the console's
policy, and publishes the change to open consoles.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request

from mamori.respond.ledger import Ledger, LedgerError
from mamori.web.api.deps import PROTECTED, Analyst, Responder, fail, store
from mamori.web.console import work

router = APIRouter(prefix="/api/decisions", tags=["decisions"], responses=PROTECTED)

StateQ = Literal["proposed", "pending", "approved", "denied", "rejected", "expired"]


@router.get("")
def list_decisions(
    request: Request, user: Analyst, state: StateQ | None = None
) -> list[dict[str, Any]]:
    """Decisions in the order they were proposed, optionally of one state."""
    return [e.to_json() for e in Ledger(store(request)).list(state)]


@router.get("/{decision_id}", responses={404: {}})
def get_decision(decision_id: str, request: Request, user: Analyst) -> dict[str, Any]:
    try:
        return Ledger(store(request)).get(decision_id).to_json()
    except LedgerError as exc:
        fail(exc)


@router.post("/{decision_id}/approve", responses={400: {}, 404: {}})
def approve(decision_id: str, request: Request, user: Responder) -> dict[str, Any]:
    """Enforce a pending decision from now for its TTL (refused if the policy now denies it)."""
    try:
        return work.approve(request.app, decision_id, by=user.name).to_json()
    except LedgerError as exc:
        fail(exc)


@router.post("/{decision_id}/reject", responses={400: {}, 404: {}})
def reject(decision_id: str, request: Request, user: Responder) -> dict[str, Any]:
    try:
        return work.reject(request.app, decision_id, by=user.name).to_json()
    except LedgerError as exc:
        fail(exc)
