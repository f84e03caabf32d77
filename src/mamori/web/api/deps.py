"""What every API module shares: the role annotations, the store, the runs registry, error mapping."""

from __future__ import annotations

from typing import Annotated, NoReturn

from fastapi import Depends, HTTPException, Request

from mamori.store import Store
from mamori.web.auth import Role, User, require
from mamori.web.console.runs import Run, Runs

Analyst = Annotated[User, Depends(require(Role.ANALYST))]
Responder = Annotated[User, Depends(require(Role.RESPONDER))]
Admin = Annotated[User, Depends(require(Role.ADMIN))]

# Documented on every protected route, so the schema (and schemathesis) know these answers.
PROTECTED = {401: {"description": "no or bad credentials"}, 403: {"description": "role too small"}}


def store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def runs(request: Request) -> Runs:
    return request.app.state.runs  # type: ignore[no-any-return]


def run_or_404(request: Request, run_id: str) -> Run:
    run = runs(request).get(run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id!r}")
    return run


def fail(exc: Exception, not_found: tuple[str, ...] = ("no ",)) -> NoReturn:
    """A stage's refusal as an HTTP answer: 404 when it says the thing is not there, else 400."""
    message = str(exc)
    raise HTTPException(404 if message.startswith(not_found) else 400, message) from None
