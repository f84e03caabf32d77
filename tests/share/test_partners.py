"""The partner registry: credentials shown once and kept only as salted scrypt hashes, grants,
revocation; and its CLI (`mamori share partner add|list|revoke`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mamori.cli import app as cli
from mamori.share import partners
from mamori.share import tables as t
from mamori.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def test_credential_is_stored_only_as_a_salted_scrypt_hash(store):
    secret = partners.add(store, "cert-a", ["intel"])
    twin = partners.add(store, "cert-b", ["intel"])
    with store.begin() as conn:
        rows = {r.name: r.secret_hash for r in conn.execute(sa.select(t.partners))}
        dump = "\n".join(str(tuple(r)) for r in conn.execute(sa.select(t.partners)))
    assert secret not in dump and twin not in dump
    scheme, n, _r, _p, salt, _digest = rows["cert-a"].split("$")
    assert scheme == "scrypt" and int(n) >= 2**14 and len(bytes.fromhex(salt)) == 16
    assert rows["cert-a"].split("$")[4] != rows["cert-b"].split("$")[4]  # salted per partner
    assert partners.authenticate(store, "cert-a", secret).name == "cert-a"
    assert partners.authenticate(store, "cert-a", twin) is None
    assert partners.authenticate(store, "cert-b", secret) is None
    assert partners.authenticate(store, "nobody", secret) is None


@settings(max_examples=30)
@given(secret=st.text(min_size=1, max_size=40), other=st.text(min_size=1, max_size=40))
def test_verify_accepts_exactly_the_secret(secret, other):
    partners._SCRYPT, old = (2**4, 8, 1), partners._SCRYPT
    try:
        stored = partners.hash_secret(secret)
        assert partners.verify_secret(secret, stored)
        assert partners.verify_secret(other, stored) == (other == secret)
        assert not partners.verify_secret(secret, stored.replace("scrypt", "md5"))
        assert not partners.verify_secret(secret, "garbage")
    finally:
        partners._SCRYPT = old


def test_revoke_stops_a_remembered_credential_at_once(store):
    secret = partners.add(store, "cert-a", ["intel"])
    assert partners.authenticate(store, "cert-a", secret) is not None  # now remembered
    partners.revoke(store, "cert-a")
    assert partners.authenticate(store, "cert-a", secret) is None
    assert partners.get(store, "cert-a").revoked is not None
    with pytest.raises(partners.PartnerError, match="no active partner"):
        partners.revoke(store, "cert-a")


def test_grants_names_and_open_tlps_are_checked(store):
    partners.add(store, "cert-a", ["intel", "feeds"], can_read=True, can_write=True)
    p = partners.get(store, "cert-a")
    assert sorted((g.alias, g.can_read, g.can_write) for g in p.grants.values()) == [
        ("feeds", True, True),
        ("intel", True, True),
    ]
    partners.add(store, "cert-b", ["intel"], can_read=False, can_write=True)
    ids = {g.alias: cid for cid, g in p.grants.items()}
    assert set(partners.get(store, "cert-b").grants) == {ids["intel"]}  # one collection, shared
    with pytest.raises(partners.PartnerError, match="exists"):
        partners.add(store, "cert-a", [])
    for bad in ("", "a:b", "has space", "x" * 65):
        with pytest.raises(partners.PartnerError, match="partner name"):
            partners.add(store, bad, [])
    for never_open in ("amber", "amber+strict", "red"):
        with pytest.raises(partners.PartnerError, match="cannot be shared without naming"):
            partners.add(store, "cert-c", [], open_tlps=(never_open,))
    partners.add(store, "cert-d", [], open_tlps=("white",))
    assert partners.get(store, "cert-d").open_tlps == ("clear",)


def test_cli_add_prints_the_credential_once_list_never(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMORI_STATE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    run = CliRunner().invoke
    r = run(cli, ["share", "partner", "add", "cert-eu", "-c", "intel", "--can-write"])
    assert r.exit_code == 0, r.output
    secret = re.search(r"password: (\S+)", r.output).group(1)
    store = Store()
    assert partners.authenticate(store, "cert-eu", secret) is not None
    r = run(cli, ["share", "partner", "list"])
    assert r.exit_code == 0 and "cert-eu" in r.output and "intel (rw)" in r.output
    assert secret not in r.output
    r = run(cli, ["share", "partner", "add", "cert-eu"])
    assert r.exit_code == 2 and "exists" in r.output and "Traceback" not in r.output
    r = run(cli, ["share", "partner", "revoke", "cert-eu"])
    assert r.exit_code == 0
    assert partners.authenticate(store, "cert-eu", secret) is None
    r = run(cli, ["share", "partner", "revoke", "cert-eu"])
    assert r.exit_code == 2 and "no active partner" in r.output
    r = run(cli, ["share", "pull", "ghost"])
    assert r.exit_code == 2 and "no partner named 'ghost'" in r.output


def test_cli_publish_then_push_reports_bad_input(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("MAMORI_STATE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    run = CliRunner().invoke
    bundle = data_dir / "threat-intel/stix2.1-examples/examples/indicators-for-C2-with-COA.json"
    r = run(cli, ["share", "publish", str(bundle), "-c", "intel", "--tlp", "green"])
    assert r.exit_code == 0, r.output
    assert re.search(r"intel: (\d+) added", r.output).group(1) == "8"
    r = run(cli, ["share", "publish", str(bundle), "-c", "intel", "--tlp", "purple"])
    assert r.exit_code == 2 and "unknown TLP" in r.output
    r = run(cli, ["share", "publish", str(tmp_path / "none.json"), "-c", "intel"])
    assert r.exit_code == 2 and "none.json" in r.output
    r = run(cli, ["share", "push", "someone"])
    assert r.exit_code == 2 and "exactly one of --bundle" in r.output
