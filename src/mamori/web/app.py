"""The ASGI application every web door shares; stages contribute routers, the app only mounts."""

from __future__ import annotations

from fastapi import FastAPI

from mamori.store import Store


def create_app(store: Store | None = None) -> FastAPI:
    app = FastAPI(title="mamori", version="0.1.0")
    app.state.store = store or Store()
    from mamori.share.taxii.server import BareGetFirst
    from mamori.share.taxii.server import router as taxii_router

    app.include_router(taxii_router)  # TAXII 2.1 under /taxii2/
    app.add_middleware(BareGetFirst)  # its paged reads skip the rest of the stack
    from mamori.respond.points.crowdsec import router as crowdsec_router

    app.include_router(crowdsec_router)  # CrowdSec bouncers' decision stream under /v1/
    from mamori.web.api import mount as mount_api

    mount_api(app)  # REST API under /api/ (users, sessions, tokens: mamori.web.auth)
    from mamori.web.console import mount as mount_console

    mount_console(app)  # the console's pages, /events and /static
    return app
