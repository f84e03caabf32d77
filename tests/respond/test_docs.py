"""docs/respond.md is true: its worked example runs as written on the real captures it names, and
every policy key and shipped profile is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from mamori.cli import app
from mamori.respond.policy import KEYS
from mamori.respond.profiles import load_profiles

DOC = Path(__file__).resolve().parents[2] / "docs" / "respond.md"
runner = CliRunner()


def _example_policy() -> str:
    text = DOC.read_text()
    after = text.split("<!-- policy example", 1)[1]
    return re.search(r"```yaml\n(.*?)```", after, re.S).group(1)  # type: ignore[union-attr]


def _cli(*args: str) -> list[dict]:
    res = runner.invoke(app, ["respond", *args, "--format", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_the_worked_example(tmp_path: Path, asyncrat_report: Path, dns_tunnel_report: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(_example_policy())
    db = f"sqlite:///{tmp_path / 'state.db'}"
    plan = {
        (p["action"], p["target"]): p
        for p in _cli("plan", str(asyncrat_report), "--policy", str(policy), "--db", db)
    }
    assert plan.keys() == {("block_ip", "181.131.218.39"), ("quarantine", "192.168.100.124")}
    block, quarantine = (
        plan[("block_ip", "181.131.218.39")],
        plan[("quarantine", "192.168.100.124")],
    )
    assert (block["id"], block["verdict"], block["ttl"]) == (
        "d-875cb99672658531",
        "allow",
        12 * 3600,
    )
    assert (
        "ttl clamped from 1d to 12h" in block["reasons"] and block["incident"] == "INC-9dd2356d3d40"
    )
    assert (quarantine["id"], quarantine["verdict"], quarantine["ttl"]) == (
        "d-f85fc90e9e212db7",
        "needs_approval",
        7200,
    )

    sinkhole, dns = sorted(
        _cli("plan", str(dns_tunnel_report), "--policy", str(policy), "--db", db),
        key=lambda d: d["action"] != "sinkhole",
    )
    # The tunnel's zone is an entity of the incident: the dns_c2 profile sinkholes it, for a person
    # to approve.
    assert (sinkhole["id"], sinkhole["action"], sinkhole["target"], sinkhole["verdict"]) == (
        "d-d292c883edc4361a",
        "sinkhole",
        "ostrykebs.pl",
        "needs_approval",
    )
    assert (dns["id"], dns["action"], dns["target"], dns["verdict"]) == (
        "d-cd1ef79d711c5b84",
        "quarantine",
        "192.168.100.121",
        "deny",
    )
    assert "confidence 0.68 is below 0.85, the least for quarantine" in dns["reasons"]

    res = runner.invoke(app, ["respond", "approve", dns["id"], "--db", db])
    assert res.exit_code == 1 and "is denied; only pending decisions can be approved" in res.stderr
    (approved,) = _cli("approve", quarantine["id"], "--by", "alice", "--db", db)
    assert approved["state"] == "approved"
    res = runner.invoke(app, ["respond", "audit", "verify", "--db", db])
    assert res.exit_code == 0 and "audit log intact: 10 entries" in res.stdout
    for id_ in (block["id"], quarantine["id"], sinkhole["id"], dns["id"]):
        assert id_ in DOC.read_text()


def test_every_policy_key_and_shipped_profile_is_documented() -> None:
    text = DOC.read_text()
    for key in KEYS:
        assert f"`{key}" in text, key
    for profile in load_profiles().profiles:
        assert f"`{profile.name}`" in text, profile.name
