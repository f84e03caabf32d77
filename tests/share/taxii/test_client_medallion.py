"""Conformance: our TAXII client (share pull / push) against the OASIS reference server medallion
on loopback, exchanging the real OASIS example bundles both ways."""

from __future__ import annotations

import re
import uuid

import pytest
from taxii2client.v21 import Collection, as_pages

from mamori.intel.store import read as read_intel
from mamori.share import client, partners
from mamori.share.taxii.ingest import publish
from mamori.share.tlp import Tlp
from support.taxii_peers import MEDALLION_COLLECTION, MEDALLION_USER, medallion_server


@pytest.fixture
def peer(tmp_path, examples):
    """medallion holding poisonivy.json (unmarked, as OASIS publishes it)."""
    with medallion_server(
        tmp_path / "medallion", examples("threat-reports/poisonivy.json")
    ) as root:
        yield root


def _register(store, root, name="oasis"):
    partners.add(
        store,
        name,
        [],
        remote_url=root,
        remote_collection="shared",  # by title: the client resolves it to the id
        remote_user=MEDALLION_USER[0],
        remote_password=MEDALLION_USER[1],
    )


def _remote_ids(root):
    coll = Collection(
        f"{root}collections/{MEDALLION_COLLECTION}/",
        user=MEDALLION_USER[0],
        password=MEDALLION_USER[1],
    )
    return {
        o["id"]
        for env in as_pages(coll.get_objects, per_request=100)
        for o in env.get("objects", [])
    }


def test_pull_from_medallion_into_intel_then_only_what_is_new(peer, store, tmp_path, examples):
    _register(store, peer)
    intel = tmp_path / "intel"
    first = client.pull(store, "oasis", intel)
    ivy = examples("threat-reports/poisonivy.json")
    assert first.objects == len(ivy) and not first.rejected
    frame = read_intel(intel)
    assert frame["source"].unique().to_list() == ["taxii:oasis"]
    assert set(frame["object_id"]) <= {o["id"] for o in ivy if o["type"] == "indicator"}
    assert first.indicators == frame.height > 0
    assert set(frame["tlp"]) == {"amber"}  # unmarked partner data is not ours to share on
    assert partners.get(store, "oasis").last_pull == first.last_added

    # Nothing new: the next pull asks only for what was added after the remembered mark.
    again = client.pull(store, "oasis", intel)
    assert again.objects == 0

    # Something new arrives at the partner (posted by the official client), and only it is pulled.
    new = examples("indicator-for-c2-ip-address.json")
    coll = Collection(
        f"{peer}collections/{MEDALLION_COLLECTION}/",
        user=MEDALLION_USER[0],
        password=MEDALLION_USER[1],
    )
    coll.add_objects({"objects": new})
    third = client.pull(store, "oasis", intel)
    assert third.objects == len(new)
    assert third.last_added > first.last_added


def test_push_to_medallion_filtered_by_tlp(peer, store, examples):
    _register(store, peer)
    apt1 = examples("threat-reports/apt1.json")
    green = [{**o, "object_marking_refs": [Tlp.GREEN.marking_id]} for o in apt1]
    red_id = "indicator--" + str(uuid.uuid4())
    red = {**next(o for o in green if o["type"] == "indicator"), "id": red_id,
           "object_marking_refs": [Tlp.RED.marking_id]}  # fmt: skip
    amber = {
        **red,
        "id": "indicator--" + str(uuid.uuid4()),
        "object_marking_refs": [Tlp.AMBER.marking_id],
    }
    unmarked = {**red, "id": "indicator--" + str(uuid.uuid4()), "object_marking_refs": []}
    result = client.push(store, "oasis", [*green, red, amber, unmarked])
    assert result.sent == len(green) and result.succeeded == len(green) and not result.failed
    withheld = dict(result.withheld)
    assert set(withheld) == {red_id, amber["id"], unmarked["id"]}
    assert "RED" in withheld[red_id]
    remote = _remote_ids(peer)
    assert {o["id"] for o in green} <= remote
    assert not {red_id, amber["id"], unmarked["id"]} & remote

    # AMBER goes when an analyst names the partner on it.
    named = client.push(store, "oasis", [amber], named={amber["id"]: ["oasis"]})
    assert named.succeeded == 1 and amber["id"] in _remote_ids(peer)


def test_push_from_collection_never_reshares_a_partners_amber(peer, store, examples):
    """What partner A sent at AMBER sits in our collection; pushing that collection to partner
    B (medallion) must leave it out, while our own GREEN objects go."""
    _register(store, peer)
    ours = examples("indicators-for-C2-with-COA.json")
    publish(store, "intel", ours, Tlp.GREEN)
    theirs = [{**o, "object_marking_refs": [Tlp.AMBER.marking_id]}
              for o in examples("infrastructure.json")]  # fmt: skip
    from mamori.share.taxii import ingest, storage

    with store.begin() as conn:
        cid = partners.ensure_collection(conn, "intel")
        storage.add(conn, cid, ingest.items_for(conn, cid, theirs, "partner:cert-a"))
    objects, named, origins = client.collection_objects(store, "intel")
    result = client.push(store, "oasis", objects, named=named, origins=origins)
    remote = _remote_ids(peer)
    assert {o["id"] for o in ours} <= remote
    assert not {o["id"] for o in theirs} & remote
    assert all("cert-a" in why for oid, why in result.withheld if oid in {o["id"] for o in theirs})


def test_pull_reports_an_unreachable_or_wrong_partner(store, tmp_path):
    partners.add(store, "ghost", [], remote_url="http://127.0.0.1:9/api1/", remote_collection="x")
    with pytest.raises(client.ClientError, match=r"127\.0\.0\.1:9"):
        client.pull(store, "ghost", tmp_path / "intel")
    partners.add(store, "nobody", [])
    with pytest.raises(client.ClientError, match="no TAXII server registered"):
        client.pull(store, "nobody", tmp_path / "intel")


def test_cli_pull_and_push_against_medallion(peer, tmp_path, monkeypatch, data_dir):
    """The thin doors: `share partner add --url`, `share pull`, `share push --bundle`."""
    from typer.testing import CliRunner

    from mamori.cli import app as cli

    monkeypatch.setenv("MAMORI_STATE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("MAMORI_REMOTE_PASSWORD", MEDALLION_USER[1])
    run = CliRunner().invoke
    add = ["share", "partner", "add", "oasis", "--url", peer, "--remote-collection", "shared",
           "--remote-user", MEDALLION_USER[0]]  # fmt: skip
    assert run(cli, add).exit_code == 0
    intel = tmp_path / "intel"
    r = run(cli, ["share", "pull", "oasis", "--store", str(intel)])
    assert r.exit_code == 0, r.output
    assert re.search(
        r"oasis: 155 object\(s\), (\d+) indicator\(s\) into intel, 0 rejected", r.output
    )
    assert read_intel(intel).height > 0
    bundle = data_dir / "threat-intel/stix2.1-examples/examples/interop-objectmarking-test.json"
    r = run(cli, ["share", "push", "oasis", "--bundle", str(bundle)])
    assert r.exit_code == 0, r.output
    assert "sent 0" in r.output and "withheld by TLP 1" in r.output and "RED" in r.output
    r = run(cli, ["share", "push", "oasis", "--bundle", str(tmp_path / "missing.json")])
    assert r.exit_code == 2 and "missing.json" in r.output and "Traceback" not in r.output
