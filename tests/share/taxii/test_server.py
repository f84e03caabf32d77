"""The TAXII 2.1 server: endpoints, filters, pagination, errors, POST with status, provenance."""

from __future__ import annotations

import base64
import copy
import json
import uuid

import pytest

from mamori.intel.store import read as read_intel
from mamori.share import partners
from mamori.share.taxii.ingest import publish
from mamori.share.taxii.timestamps import parse_us
from mamori.share.tlp import Tlp

ROOT = "/taxii2/mamori"
TAXII = "application/taxii+json;version=2.1"


@pytest.fixture
def acme(store):
    return "acme", partners.add(store, "acme", ["intel"], can_read=True, can_write=True)


@pytest.fixture
def apt1(store, examples, acme):
    objs = examples("threat-reports/apt1.json")
    publish(store, "intel", objs, Tlp.GREEN)
    return objs


def _all_pages(client, url, hdrs, limit, key="objects", params=None):
    """Follow ``next`` to the end; every page's body and headers."""
    pages = []
    q = {"limit": limit, **(params or {})}
    while True:
        r = client.get(url, headers=hdrs, params=q)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == TAXII
        body = r.json()
        pages.append((body, r.headers))
        if not body.get("more"):
            return pages
        q = {**q, "next": body["next"]}


def test_discovery_and_api_root(client, acme, auth):
    r = client.get("/taxii2/", headers=auth(*acme))
    assert r.status_code == 200 and r.headers["content-type"] == TAXII
    body = r.json()
    assert body["default"] in body["api_roots"]
    assert body["api_roots"][0].endswith("/taxii2/mamori/")
    r = client.get(f"{ROOT}/", headers=auth(*acme))
    assert r.json()["versions"] == [TAXII]
    assert r.json()["max_content_length"] > 0


def test_collections_are_per_partner(client, store, acme, auth):
    other = partners.add(store, "other", ["private"], can_read=True, can_write=False)
    mine = client.get(f"{ROOT}/collections/", headers=auth(*acme)).json()["collections"]
    theirs = client.get(f"{ROOT}/collections/", headers=auth("other", other)).json()["collections"]
    assert [c["alias"] for c in mine] == ["intel"]
    assert [(c["alias"], c["can_read"], c["can_write"]) for c in theirs] == [
        ("private", True, False)
    ]
    # A collection without a grant does not exist for that partner; with a grant it does.
    cid = mine[0]["id"]
    assert client.get(f"{ROOT}/collections/{cid}/", headers=auth("other", other)).status_code == 404
    got = client.get(f"{ROOT}/collections/{cid}/", headers=auth(*acme)).json()
    assert got["id"] == cid and uuid.UUID(cid)
    assert got["media_types"] == ["application/stix+json;version=2.1"]


def test_pagination_visits_every_object_once_in_date_added_order(client, apt1, acme, auth):
    url = f"{ROOT}/collections/intel/objects/"
    pages = _all_pages(client, url, auth(*acme), limit=7)
    ids = [o["id"] for body, _ in pages for o in body.get("objects", [])]
    assert sorted(ids) == sorted(o["id"] for o in apt1)
    assert len(ids) == len(set(ids))
    assert all(len(body["objects"]) == 7 for body, _ in pages[:-1])
    stamps = []
    for _body, h in pages:
        first, last = h["X-TAXII-Date-Added-First"], h["X-TAXII-Date-Added-Last"]
        assert parse_us(first) <= parse_us(last)
        stamps += [parse_us(first), parse_us(last)]
    assert stamps == sorted(stamps)
    # The manifest pages the same set, with the versions of the objects.
    man = _all_pages(client, f"{ROOT}/collections/intel/manifest/", auth(*acme), limit=11)
    entries = [e for body, _ in man for e in body.get("objects", [])]
    by_id = {o["id"]: o for o in apt1}
    assert sorted(e["id"] for e in entries) == sorted(by_id)
    for e in entries:
        assert e["version"] == by_id[e["id"]].get("modified", by_id[e["id"]].get("created"))
        assert e["media_type"] == "application/stix+json;version=2.1"


def test_added_after_resumes_without_loss_or_repeat(client, store, apt1, examples, acme, auth):
    url = f"{ROOT}/collections/intel/objects/"
    r = client.get(url, headers=auth(*acme), params={"limit": 10})
    mark = r.headers["X-TAXII-Date-Added-Last"]
    rest = _all_pages(client, url, auth(*acme), limit=10, params={"added_after": mark})
    later = [o["id"] for body, _ in rest for o in body.get("objects", [])]
    first = [o["id"] for o in r.json()["objects"]]
    assert not set(first) & set(later)
    assert sorted(first + later) == sorted(o["id"] for o in apt1)
    # Newly published objects come after the last mark.
    last_mark = rest[-1][1]["X-TAXII-Date-Added-Last"]
    ivy = examples("threat-reports/poisonivy.json")
    publish(store, "intel", ivy, Tlp.GREEN)
    new = _all_pages(client, url, auth(*acme), limit=50, params={"added_after": last_mark})
    got = {o["id"] for body, _ in new for o in body.get("objects", [])}
    assert got == {o["id"] for o in ivy} - {o["id"] for o in apt1}


def test_match_type_and_id(client, apt1, acme, auth):
    url = f"{ROOT}/collections/intel/objects/"
    r = client.get(url, headers=auth(*acme), params={"match[type]": "indicator,malware"})
    want = {o["id"] for o in apt1 if o["type"] in ("indicator", "malware")}
    assert {o["id"] for o in r.json()["objects"]} == want
    two = sorted(want)[:2]
    r = client.get(url, headers=auth(*acme), params={"match[id]": ",".join(two)})
    assert sorted(o["id"] for o in r.json()["objects"]) == two
    r = client.get(url, headers=auth(*acme), params={"match[spec_version]": "2.0"})
    assert r.status_code == 200 and "objects" not in r.json()


def test_versions_first_last_all_and_by_timestamp(client, store, acme, auth):
    base = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--" + str(uuid.uuid4()),
        "created": "2020-01-01T00:00:00.000Z",
        "name": "v",
        "description": "versioned",
        "indicator_types": ["malicious-activity"],
        "pattern": "[ipv4-addr:value = '198.51.100.7']",
        "pattern_type": "stix",
        "valid_from": "2020-01-01T00:00:00Z",
    }
    stamps = ["2020-01-01T00:00:00.000Z", "2021-01-01T00:00:00.000Z", "2022-01-01T00:00:00.000Z"]
    # Published out of order: first/last follow the versions, not the order of arrival.
    for m in (stamps[1], stamps[0], stamps[2]):
        publish(store, "intel", [{**base, "modified": m}], Tlp.GREEN)
    oid = base["id"]
    obj_url = f"{ROOT}/collections/intel/objects/{oid}/"
    h = auth(*acme)

    def mods(params=None):
        r = client.get(obj_url, headers=h, params=params or {})
        assert r.status_code == 200, r.text
        return sorted(o["modified"] for o in r.json()["objects"])

    assert mods() == [stamps[2]]
    assert mods({"match[version]": "first"}) == [stamps[0]]
    assert mods({"match[version]": "first,last"}) == [stamps[0], stamps[2]]
    assert mods({"match[version]": "all"}) == stamps
    assert mods({"match[version]": stamps[1]}) == [stamps[1]]
    r = client.get(f"{obj_url}versions/", headers=h)
    assert sorted(r.json()["versions"]) == stamps
    assert r.headers["X-TAXII-Date-Added-First"] <= r.headers["X-TAXII-Date-Added-Last"]
    r = client.get(obj_url, headers=h, params={"match[version]": "yesterday"})
    assert r.status_code == 400 and r.json()["http_status"] == "400"
    missing = f"{ROOT}/collections/intel/objects/indicator--{uuid.uuid4()}/"
    assert client.get(missing, headers=h).status_code == 404
    assert client.get(missing + "versions/", headers=h).status_code == 404


def _envelope(objs):
    return json.dumps({"objects": objs})


def test_post_validates_stores_with_provenance_and_imports_into_intel(
    client, app, store, examples, acme, auth
):
    objs = examples("indicators-for-C2-with-COA.json")
    broken = copy.deepcopy(next(o for o in objs if o["type"] == "indicator"))
    broken["id"] = "indicator--" + str(uuid.uuid4())
    del broken["pattern"]
    h = auth(*acme, **{"Content-Type": TAXII})
    r = client.post(
        f"{ROOT}/collections/intel/objects/", headers=h, content=_envelope([*objs, broken])
    )
    assert r.status_code == 202, r.text
    status = r.json()
    assert status["status"] == "complete"
    assert status["total_count"] == len(objs) + 1
    assert status["success_count"] == len(objs) and status["failure_count"] == 1
    (failure,) = status["failures"]
    assert failure["id"] == broken["id"]
    assert "'pattern' is a required property" in failure["message"]  # the validator's words
    # The status resource can be read back by its requester only.
    url = f"{ROOT}/status/{status['id']}/"
    assert client.get(url, headers=auth(*acme)).json() == status
    other = partners.add(store, "other", ["intel"])
    assert client.get(url, headers=auth("other", other)).status_code == 404
    # Provenance: stored as the partner's, imported into intel under taxii:acme.
    from mamori.share import tables as t

    with store.begin() as conn:
        prov = {
            r[0] for r in conn.execute(t.objects.select().with_only_columns(t.objects.c.provenance))
        }
    assert prov == {"partner:acme"}
    intel = read_intel(app.state.intel_store)
    want = {o["id"] for o in objs if o["type"] == "indicator"}
    assert intel.height > 0
    assert set(intel["object_id"].unique()) <= want
    assert intel["source"].unique().to_list() == ["taxii:acme"]
    # Posting the same envelope again changes nothing (same ids and versions).
    r2 = client.post(f"{ROOT}/collections/intel/objects/", headers=h, content=_envelope(objs))
    assert r2.json()["success_count"] == len(objs)
    assert all(s.get("message") == "already in the collection" for s in r2.json()["successes"])


def test_partner_can_delete_only_what_it_added(client, store, apt1, examples, acme, auth):
    h = auth(*acme, **{"Content-Type": TAXII})
    mine = next(o for o in examples("indicator-for-c2-ip-address.json") if o["type"] == "indicator")
    assert (
        client.post(
            f"{ROOT}/collections/intel/objects/", headers=h, content=_envelope([mine])
        ).status_code
        == 202
    )
    url = f"{ROOT}/collections/intel/objects/{mine['id']}/"
    # acme sent it unmarked: stored, but unmarked objects never leave, not even to their sender.
    assert client.get(url, headers=auth(*acme)).status_code == 404
    ours = next(o for o in apt1 if o["type"] == "indicator")
    r = client.delete(f"{ROOT}/collections/intel/objects/{ours['id']}/", headers=auth(*acme))
    assert r.status_code == 403
    marked = {
        **mine,
        "id": "indicator--" + str(uuid.uuid4()),
        "object_marking_refs": [Tlp.AMBER.marking_id],
    }
    client.post(f"{ROOT}/collections/intel/objects/", headers=h, content=_envelope([marked]))
    url = f"{ROOT}/collections/intel/objects/{marked['id']}/"
    assert client.get(url, headers=auth(*acme)).status_code == 200  # AMBER back to its sender
    assert client.delete(url, headers=auth(*acme)).status_code == 200
    assert client.get(url, headers=auth(*acme)).status_code == 404


def test_errors_are_taxii_error_messages(client, store, apt1, acme, auth):
    url = f"{ROOT}/collections/intel/objects/"

    def check(r, code):
        assert r.status_code == code, r.text
        assert r.headers["content-type"] == TAXII
        body = r.json()
        assert body["http_status"] == str(code) and body["title"] and body["description"]

    check(client.get(url, headers={"Accept": TAXII}), 401)
    assert "Basic" in client.get(url, headers={"Accept": TAXII}).headers["WWW-Authenticate"]
    check(client.get(url, headers=auth("acme", "wrong")), 401)
    check(client.get(url, headers=auth("nobody", "x")), 401)
    check(client.get(url, headers=auth(*acme, Accept="application/json")), 406)
    check(client.get(url, headers=auth(*acme, Accept="application/taxii+json;version=2.0")), 406)
    assert client.get(url, headers=auth(*acme, Accept="application/taxii+json")).status_code == 200
    check(client.get(url, headers=auth(*acme), params={"limit": "0"}), 400)
    check(client.get(url, headers=auth(*acme), params={"next": "!!"}), 400)
    huge = base64.urlsafe_b64encode(b"9" * 40 + b":1").decode()
    check(client.get(url, headers=auth(*acme), params={"next": huge}), 400)
    check(client.get(url, headers=auth(*acme), params={"added_after": "soon"}), 400)
    check(client.get(f"{ROOT}/collections/nope/objects/", headers=auth(*acme)), 404)
    check(client.get("/taxii2/elsewhere/", headers=auth(*acme)), 404)
    check(client.get(f"{ROOT}/no/such/thing/", headers=auth(*acme)), 404)
    post = auth(*acme, **{"Content-Type": TAXII})
    check(
        client.post(url, headers=auth(*acme, **{"Content-Type": "application/json"}), content="{}"),
        415,
    )
    check(client.post(url, headers=post, content="not json"), 422)
    check(client.post(url, headers=post, content='{"objects": 3}'), 422)
    big = '{"objects": [' + ",".join(['{"x": "' + "a" * 1000 + '"}'] * 11_000) + "]}"
    check(client.post(url, headers=post, content=big), 413)
    reader = partners.add(store, "reader", ["intel"], can_read=True, can_write=False)
    check(
        client.post(url, headers=auth("reader", reader, **{"Content-Type": TAXII}), content="{}"),
        403,
    )
    blind = partners.add(store, "blind", ["intel"], can_read=False, can_write=True)
    check(client.get(url, headers=auth("blind", blind)), 403)
    partners.revoke(store, "reader")
    check(client.get(url, headers=auth("reader", reader)), 401)


def test_limit_is_capped_and_pages_still_complete(client, store, acme, auth):
    from mamori.share.taxii import server

    objs = [
        {"type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{uuid.uuid4()}",
         "value": f"198.51.100.{i % 250}"}
        for i in range(30)
    ]  # fmt: skip
    publish(store, "intel", objs, Tlp.CLEAR)
    old = server.MAX_PAGE
    server.MAX_PAGE = 8
    try:
        pages = _all_pages(client, f"{ROOT}/collections/intel/objects/", auth(*acme), limit=100)
    finally:
        server.MAX_PAGE = old
    assert [len(b["objects"]) for b, _ in pages] == [8, 8, 8, 6]
    got = [o["id"] for b, _ in pages for o in b["objects"]]
    assert sorted(got) == sorted(o["id"] for o in objs)


def test_unmarked_and_red_never_served(client, store, examples, acme, auth):
    publish(store, "intel", examples("threat-reports/apt1.json"))  # unmarked: stays home
    red = examples("interop-objectmarking-test.json")  # TLP:RED (TLP 1.0 id) campaign
    publish(store, "intel", red, Tlp.GREEN)  # a default never lowers an existing marking
    green = examples("indicators-for-C2-with-COA.json")
    publish(store, "intel", green, Tlp.GREEN)
    r = client.get(
        f"{ROOT}/collections/intel/objects/", headers=auth(*acme), params={"limit": 1000}
    )
    got = {o["id"] for o in r.json().get("objects", [])}
    assert got == {o["id"] for o in green}
    url = f"{ROOT}/collections/intel/objects/{red[0]['id']}/"
    assert client.get(url, headers=auth(*acme)).status_code == 404
    assert client.get(url + "versions/", headers=auth(*acme)).status_code == 404
    man = client.get(f"{ROOT}/collections/intel/manifest/", headers=auth(*acme)).json()
    assert {e["id"] for e in man["objects"]} == got
