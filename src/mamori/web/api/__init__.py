"""The REST API under ``/api/``: one module per resource, each a router whose routes state their role.

Routes are thin: they check the caller's role (:func:`mamori.web.auth.require`), call the same
stage function the CLI calls, and shape its answer. ``mount`` adds them all to an app.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from mamori.web.auth import AuthSettings


def mount(app: FastAPI) -> None:
    from mamori.web import auth

    if not hasattr(app.state, "auth"):
        app.state.auth = AuthSettings()
    app.include_router(auth.router)
    for router in _routers():
        app.include_router(router)


def _routers() -> list[APIRouter]:
    from mamori.web.api import cases, decisions, hunt, incidents, intel, partners, runs, users

    modules = (runs, incidents, cases, decisions, intel, partners, hunt, users)
    return [m.router for m in modules]
