"""The web console: server-rendered pages over the same stage functions the CLI calls.

``mount(app)`` adds the pages, the ``/events`` stream and ``/static`` to an app. Pages render with
Jinja2 from ``mamori/web/templates``; assets (our own CSS and a little vanilla JS) come from
``mamori/web/static`` inside the installed package, so nothing is fetched from anywhere else.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mamori.web.console.settings import ConsoleSettings
from mamori.web.events import Broker

STATIC = Path(__file__).resolve().parent.parent / "static"


def mount(app: FastAPI, settings: ConsoleSettings | None = None) -> None:
    from mamori.web.console.pages import router
    from mamori.web.console.runs import Runs
    from mamori.web.console.work import plan_after_run

    cfg = settings or ConsoleSettings.from_env()
    app.state.console = cfg
    if not hasattr(app.state, "events"):
        app.state.events = Broker()
    app.state.runs = Runs(
        cfg.runs_dir,
        app.state.events,
        cfg.captures,
        after=lambda run, report: plan_after_run(app, run, report),
    )
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
