"""The TAXII server on PostgreSQL (the state database a site moves to when it outgrows SQLite):
paging, versions, POST and the TLP rule with references, against a real throwaway server."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from mamori.share import partners
from mamori.share.taxii import fastget, server
from mamori.share.taxii.ingest import publish
from mamori.share.tlp import Tlp
from mamori.store import Store
from mamori.web.app import create_app
from support.postgres import fresh_database, postgres_url  # noqa: F401

ROOT = "/taxii2/mamori/collections/intel"


@pytest.fixture
def pg_store(postgres_url: str) -> Store:  # noqa: F811  (the imported fixture)
    s = Store(fresh_database(postgres_url))
    yield s
    s.close()


def test_taxii_on_postgresql(pg_store, tmp_path, examples, auth):
    store = pg_store
    secret = partners.add(store, "cert-pg", ["intel"], can_read=True, can_write=True)
    apt1 = examples("threat-reports/apt1.json")
    publish(store, "intel", apt1, Tlp.GREEN)
    app = create_app(store)
    app.state.intel_store = tmp_path / "intel"
    client = TestClient(app)
    h = auth("cert-pg", secret)

    ids, params = [], {"limit": 9}
    while True:
        r = client.get(f"{ROOT}/objects/", headers=h, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        ids += [o["id"] for o in body.get("objects", [])]
        if not body["more"]:
            break
        params["next"] = body["next"]
    assert sorted(ids) == sorted(o["id"] for o in apt1) and len(ids) == len(set(ids))

    # The raw ASGI page read (bodies read as UTF-8 bytes: convert_to) equals the endpoint's.
    for kind, endpoint in (("objects", server.get_objects), ("manifest", server.manifest)):
        path = f"{ROOT}/{kind}/"
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "",
                 "query_string": b"limit=40", "app": app, "server": ("testserver", 80),
                 "scheme": "http", "headers": [(k.lower().encode(), v.encode())
                                               for k, v in h.items()]}  # fmt: skip
        fast = fastget.answer(scope)
        slow = endpoint(Request(scope), "mamori", "intel")
        assert fast == (slow.raw_headers, slow.body) and b'"more":true' in fast[1]

    # A report citing a RED object is withheld with it; versions and POST work the same way.
    red = {**next(o for o in apt1 if o["type"] == "indicator"), "id": f"indicator--{uuid.uuid4()}",
           "object_marking_refs": [Tlp.RED.marking_id]}  # fmt: skip
    report = {
        "type": "report", "spec_version": "2.1", "id": f"report--{uuid.uuid4()}",
        "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
        "name": "cites red", "published": "2024-01-01T00:00:00Z", "object_refs": [red["id"]],
        "object_marking_refs": [Tlp.GREEN.marking_id],
    }  # fmt: skip
    publish(store, "intel", [report])  # stored before what it cites
    assert client.get(f"{ROOT}/objects/{report['id']}/", headers=h).status_code == 200
    publish(store, "intel", [red])
    assert client.get(f"{ROOT}/objects/{report['id']}/", headers=h).status_code == 404
    newer = {**report, "id": f"report--{uuid.uuid4()}", "object_refs": [apt1[0]["id"]]}
    r = client.post(
        f"{ROOT}/objects/",
        headers=auth("cert-pg", secret, **{"Content-Type": "application/taxii+json;version=2.1"}),
        content=json.dumps({"objects": [newer, {**newer, "modified": "2025-01-01T00:00:00.000Z"}]}),
    )
    assert r.status_code == 202 and r.json()["success_count"] == 2
    v = client.get(f"{ROOT}/objects/{newer['id']}/versions/", headers=h).json()["versions"]
    assert sorted(v) == ["2024-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z"]
    last = client.get(f"{ROOT}/objects/{newer['id']}/", headers=h).json()["objects"]
    assert [o["modified"] for o in last] == ["2025-01-01T00:00:00.000Z"]
