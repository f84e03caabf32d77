"""The paged reads (GET objects, GET manifest) skip the app's stack; nothing else does."""

from __future__ import annotations

import asyncio
from typing import Any

from mamori.share.taxii.server import BareGet, BareGetFirst
from mamori.store import Store
from mamori.web.app import create_app


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def test_only_get_of_the_bare_routes_is_taken_aside(tmp_path: Any, monkeypatch: Any) -> None:
    app = create_app(Store(f"sqlite:///{tmp_path / 'state.db'}"))
    assert any(m.cls is BareGetFirst for m in app.user_middleware)
    behind: list[str] = []

    async def rest(scope: Any, receive: Any, send: Any) -> None:
        behind.append(f"{scope['method']} {scope['path']}")

    seen: list[dict[str, Any]] = []

    async def bare(self: BareGet, scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path_params"])

    monkeypatch.setattr(BareGet, "__call__", bare)
    front = BareGetFirst(rest)
    assert sorted(r.path for r in front.routes) == [
        "/taxii2/{api_root}/collections/{collection_id}/manifest/",
        "/taxii2/{api_root}/collections/{collection_id}/objects/",
    ]
    for method, path in [
        ("GET", "/taxii2/mamori/collections/intel/objects/"),
        ("GET", "/taxii2/mamori/collections/intel/manifest/"),
        ("POST", "/taxii2/mamori/collections/intel/objects/"),
        ("GET", "/taxii2/mamori/collections/intel/objects/indicator--1/"),
        ("GET", "/taxii2/"),
        ("GET", "/api/incidents"),
    ]:
        asyncio.run(front(_scope(method, path), None, None))
    assert seen == [
        {"api_root": "mamori", "collection_id": "intel"},
        {"api_root": "mamori", "collection_id": "intel"},
    ]
    assert behind == [
        "POST /taxii2/mamori/collections/intel/objects/",
        "GET /taxii2/mamori/collections/intel/objects/indicator--1/",
        "GET /taxii2/",
        "GET /api/incidents",
    ]
