"""The raw ASGI page reads (share/taxii/fastget.py) answer byte for byte as the ordinary
endpoints do, decline everything else, and stop at once when a partner is revoked."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

from fastapi.testclient import TestClient
from starlette.requests import Request

from mamori.share import partners
from mamori.share.taxii import fastget, server
from mamori.share.taxii.ingest import publish
from mamori.share.tlp import Tlp
from mamori.store import Store

TAXII = "application/taxii+json;version=2.1"
KINDS = {"objects": server.get_objects, "manifest": server.manifest}


def scope(app: Any, path: str, query: str = "", **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1),
        "app": app,
    }


def both(app: Any, path: str, query: str, **headers: str) -> tuple[Any, Any]:
    """(fast answer or None, the ordinary endpoint's (status, raw headers, body))."""
    s = scope(app, path, query, **headers)
    fast = fastget.answer(s)
    _, _, root, _, collection, kind, _ = path.split("/")
    try:
        resp = KINDS[kind](Request(s), root, collection)
    except server.TaxiiError as err:
        resp = err.response()
    return fast, (resp.status_code, resp.raw_headers, resp.body)


def basic(name: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()


def world(store: Store, examples: Any) -> tuple[str, list[dict[str, Any]]]:
    """apt1 and poisonivy, a quarter each GREEN, AMBER named to acme, AMBER named to another
    partner, and RED (so relationships reach objects acme may not see)."""
    secret = partners.add(store, "acme", ["intel"], can_read=True)
    objs = examples("threat-reports/apt1.json") + examples("threat-reports/poisonivy.json")
    for i, (tlp, named) in enumerate(
        [(Tlp.GREEN, ()), (Tlp.AMBER, ("acme",)), (Tlp.AMBER, ("cert-x",)), (Tlp.RED, ())]
    ):
        publish(store, "intel", objs[i::4], tlp, named)
    return secret, objs


def test_fast_pages_equal_the_ordinary_endpoints_bytes(app, store, examples):
    secret, objs = world(store, examples)
    assert any(not json.dumps(o, ensure_ascii=False).isascii() for o in objs)  # a UTF-8 body
    h = {"Accept": TAXII, "Authorization": basic("acme", secret)}
    client = TestClient(app)
    assert client.get("/taxii2/mamori/collections/intel/objects/", headers=h).status_code == 200
    compared = 0
    for kind in KINDS:
        path = f"/taxii2/mamori/collections/intel/{kind}/"
        for limit in (1, 7, 100, 5000):
            query = {"limit": str(limit)}
            while True:
                fast, (status, raw, body) = both(app, path, urlencode(query), **h)
                assert status == 200 and fast is not None
                assert fast == (raw, body)
                compared += 1
                page = json.loads(body)
                if not page["more"]:
                    break
                query["next"] = page["next"]
            first = json.loads(body)
        added = "2014-01-01T00:00:00.000000Z"
        for query in ({"added_after": added}, {"added_after": "2099-01-01T00:00:00Z"}, {}):
            fast, (status, raw, body) = both(app, path, urlencode(query), **h)
            assert fast == (raw, body) and status == 200
    assert first["more"] is False and compared > 20
    # What acme may read and nothing else, through the fast path.
    got = json.loads(fastget.answer(scope(app, path.replace("manifest", "objects"), "", **h))[1])
    assert got["objects"] and all(o.get("object_marking_refs") != [Tlp.RED.marking_id]
                                  for o in got["objects"])  # fmt: skip


def test_declines_all_but_the_plain_successful_read(app, store, examples):
    secret, _ = world(store, examples)
    other = partners.add(store, "other", ["elsewhere"], can_read=True)
    blind = partners.add(store, "blind", ["intel"], can_read=False, can_write=True)
    client = TestClient(app)
    url = "/taxii2/mamori/collections/intel/objects/"
    ok = {"Accept": TAXII, "Authorization": basic("acme", secret)}
    # Not yet verified in this process: the ordinary endpoint verifies (scrypt), then fast.
    assert fastget.answer(scope(app, url, "", **ok)) is None
    assert client.get(url, headers=ok).status_code == 200
    assert fastget.answer(scope(app, url, "", **ok)) is not None
    client.get("/taxii2/mamori/collections/elsewhere/objects/",
               headers={"Authorization": basic("other", other)})  # fmt: skip
    client.get(url, headers={"Authorization": basic("blind", blind)})
    declined = [
        (url, "", {"Accept": TAXII}),
        (url, "", {**ok, "Authorization": basic("acme", "wrong")}),
        (url, "", {**ok, "Authorization": basic("nobody", "x")}),
        (url, "", {**ok, "Authorization": "Basic !!"}),
        (url, "", {**ok, "Accept": "application/json"}),
        (url, "", {**ok, "Accept": "application/taxii+json;version=2.0"}),
        (url, "limit=0", ok),
        (url, "limit=x", ok),
        (url, "next=!!", ok),
        (url, "added_after=soon", ok),
        ("/taxii2/mamori/collections/nope/objects/", "", ok),
        ("/taxii2/elsewhere/collections/intel/objects/", "", ok),
        (url, "", {"Authorization": basic("other", other)}),  # no grant on intel
        (url, "", {"Authorization": basic("blind", blind)}),  # may not read
    ]
    for path, query, h in declined:
        assert fastget.answer(scope(app, path, query, **h)) is None, (path, query, h)
        assert client.get(path + ("?" + query if query else ""), headers=h).status_code >= 400
    # Filters are the ordinary endpoint's to answer (expanding IN lists, version rules).
    for query in ("match%5Btype%5D=indicator", "match[version]=all", "limit=2&match[id]=x"):
        assert fastget.answer(scope(app, url, query, **ok)) is None
        assert client.get(f"{url}?{query}", headers=ok).status_code == 200
    # Accept absent, or TAXII without a version: answered.
    assert fastget.answer(scope(app, url, "", Authorization=ok["Authorization"])) is not None
    plain = {**ok, "Accept": "application/taxii+json"}
    assert fastget.answer(scope(app, url, "limit=3", **plain)) is not None


def test_revocation_stops_the_fast_path_at_once(app, store, examples):
    secret, _ = world(store, examples)
    client = TestClient(app)
    url = "/taxii2/mamori/collections/intel/objects/"
    h = {"Accept": TAXII, "Authorization": basic("acme", secret)}
    for _ in range(3):
        assert client.get(url, headers=h).status_code == 200
    assert fastget.answer(scope(app, url, "", **h)) is not None
    partners.revoke(store, "acme")  # another connection of the pool commits it
    assert fastget.answer(scope(app, url, "", **h)) is None
    r = client.get(url, headers=h)
    assert r.status_code == 401 and r.json()["http_status"] == "401"
    assert client.get(url, headers=h).status_code == 401


def test_the_kept_sqlite_connection_sees_every_commit(app, store, examples):
    """The fast path keeps one SQLite connection per thread: it must never hold a snapshot."""
    secret, objs = world(store, examples)
    client = TestClient(app)
    url = "/taxii2/mamori/collections/intel/objects/"
    h = {"Accept": TAXII, "Authorization": basic("acme", secret)}
    assert client.get(url, headers=h).status_code == 200
    before = json.loads(fastget.answer(scope(app, url, "limit=1000", **h))[1])["objects"]
    conn, _ = fastget._held[store][threading.get_ident()]  # this thread's
    assert not conn.dbapi.in_transaction
    conn.dbapi.execute("BEGIN")  # a read left open by mistake is rolled back
    conn.dbapi.execute("SELECT 1 FROM share_taxii_objects LIMIT 1").fetchall()
    new = {**next(o for o in objs if o["type"] == "indicator"), "id": f"indicator--{uuid4()}"}
    publish(store, "intel", [new], Tlp.GREEN)  # committed on another connection
    after = json.loads(fastget.answer(scope(app, url, "limit=1000", **h))[1])["objects"]
    assert not conn.dbapi.in_transaction
    assert [o["id"] for o in after] == [o["id"] for o in before] + [new["id"]]
