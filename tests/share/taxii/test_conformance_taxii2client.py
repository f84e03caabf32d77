"""Conformance: the official OASIS ``taxii2-client`` against our server on loopback (uvicorn),
exchanging the real OASIS example bundles both ways."""

from __future__ import annotations

import pytest
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Server, as_pages

from mamori.share import partners
from mamori.share.taxii.ingest import publish
from mamori.share.tlp import Tlp
from support.taxii_peers import uvicorn_server


@pytest.fixture
def live(app):
    with uvicorn_server(app) as base:
        yield base


def test_taxii2client_reads_pages_and_writes(live, store, examples):
    secret = partners.add(store, "cert-x", ["intel"], can_read=True, can_write=True)
    apt1 = examples("threat-reports/apt1.json")
    publish(store, "intel", apt1, Tlp.GREEN)

    server = Server(f"{live}/taxii2/", user="cert-x", password=secret)
    assert server.title == "mamori TAXII 2.1"
    (root,) = server.api_roots
    assert root.versions == ["application/taxii+json;version=2.1"]
    (coll,) = root.collections
    assert coll.alias == "intel" and coll.can_read and coll.can_write

    # Paged GET (taxii2-client's own pager follows `next`).
    got = [o for env in as_pages(coll.get_objects, per_request=10) for o in env.get("objects", [])]
    assert sorted(o["id"] for o in got) == sorted(o["id"] for o in apt1)
    manifest = [e for env in as_pages(coll.get_manifest, per_request=25) for e in env["objects"]]
    assert len(manifest) == len(apt1)

    # POST a real bundle the other way: the client polls the status resource to completion.
    ivy = examples("threat-reports/poisonivy.json")
    marked = [{**o, "object_marking_refs": [Tlp.GREEN.marking_id]} for o in ivy]
    status = coll.add_objects({"objects": marked})
    assert status.status == "complete"
    assert status.success_count == len(ivy) and status.failure_count == 0
    assert root.get_status(status.id).success_count == len(ivy)

    # Object, filters and versions through the client.
    ind = next(o for o in marked if o["type"] == "indicator")
    env = coll.get_object(ind["id"])
    assert env["objects"][0]["id"] == ind["id"]
    only = coll.get_objects(type="malware")
    assert {o["type"] for o in only["objects"]} == {"malware"}
    assert coll.object_versions(ind["id"])["versions"] == [ind["modified"]]
    coll.delete_object(ind["id"])
    with pytest.raises(Exception, match="404"):
        coll.get_object(ind["id"])


def test_taxii2client_refused_without_valid_credentials(live, store):
    partners.add(store, "cert-y", ["intel"])
    server = Server(f"{live}/taxii2/", user="cert-y", password="not-the-credential")
    with pytest.raises((TAXIIServiceException, Exception), match="401"):
        _ = server.title
