"""Alerts become incidents by shared hosts and time; severity, confidence and stages follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from mamori.correlate.attack import technique_name
from mamori.correlate.incidents import correlate, host_aliases
from mamori.detect.base import empty_alerts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _a(
    det: str, tech: str, sev: str, conf: float, src: str | None, dst: str | None, minute: int
) -> dict[str, object]:
    t = T0 + timedelta(minutes=minute)
    return {
        "ts": t, "detector": det, "techniques": [tech], "severity": sev, "confidence": conf,
        "summary": f"{det} {src}->{dst}", "src": src, "dst": dst, "first_seen": t,
        "last_seen": t + timedelta(minutes=5), "count": 3, "evidence_table": "conn",
        "evidence": ["C1"], "key": f"{det}|{src}|{dst}",
    }  # fmt: skip


def _df(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=empty_alerts().schema)


def test_scan_then_bruteforce_by_one_attacker_is_one_incident_in_kill_chain_order() -> None:
    rows = [
        _a("bruteforce.ssh", "T1110.001", "medium", 0.6, "203.0.113.9", "10.0.0.5", 20),
        _a("scan.port", "T1046", "low", 0.5, "203.0.113.9", "10.0.0.5", 0),
    ]
    [inc] = correlate(_df(rows))
    assert inc.severity == "medium"
    assert abs(inc.confidence - (1 - 0.4 * 0.5)) < 1e-9
    assert inc.techniques == ["T1110.001", "T1046"] or inc.techniques == ["T1046", "T1110.001"]
    # Discovery comes after credential access in ATT&CK's tactic order; stages follow that order.
    assert [s["tactic"] for s in inc.stages] == ["credential-access", "discovery"]
    assert inc.attackers == ["203.0.113.9"] and inc.victims == ["10.0.0.5"]
    assert inc.id.startswith("INC-") and len(inc.alerts) == 2


def test_unrelated_hosts_or_distant_times_stay_apart() -> None:
    rows = [
        _a("scan.port", "T1046", "low", 0.5, "203.0.113.9", "10.0.0.5", 0),
        _a("scan.port", "T1046", "low", 0.5, "198.51.100.7", "10.0.0.6", 0),
        _a("scan.port", "T1046", "high", 0.5, "203.0.113.9", "10.0.0.5", 600),  # ten hours later
    ]
    incs = correlate(_df(rows))
    assert len(incs) == 3
    assert incs[0].severity == "high"  # worst first


def test_shared_victim_links_attackers() -> None:
    rows = [
        _a("ddos.syn_flood", "T1498.001", "high", 0.9, None, "10.0.0.5", 0),
        _a("scan.port", "T1046", "low", 0.5, "203.0.113.9", "10.0.0.5", 10),
    ]
    [inc] = correlate(_df(rows))
    assert inc.victims == ["10.0.0.5"] and inc.attackers == ["203.0.113.9"]


def test_ids_are_deterministic_and_names_come_from_attack() -> None:
    rows = [_a("scan.port", "T1046", "low", 0.5, "203.0.113.9", "10.0.0.5", 0)]
    assert correlate(_df(rows))[0].id == correlate(_df(rows))[0].id
    assert technique_name("T1046") == "Network Service Discovery"
    assert technique_name("T1110.001") == "Brute Force: Password Guessing"
    assert correlate(_df([])) == []


def test_title_credits_only_the_sources_of_its_technique() -> None:
    rows = [
        _a("ddos.amplification", "T1498.002", "medium", 0.8, None, "10.0.0.5", 0),
        _a("scan.trw", "T1046", "low", 0.6, "203.0.113.9", "10.0.0.5", 5),
    ]
    [inc] = correlate(_df(rows))
    assert inc.attackers == ["203.0.113.9"]  # the scanner is an attacker in the incident…
    assert "203.0.113.9" not in inc.title and inc.title.endswith(
        "against 10.0.0.5"
    )  # …not of the DDoS


def test_attribution_from_intel_links_is_hedged(tmp_path, data_dir) -> None:  # type: ignore[no-untyped-def]
    """Indicators tied to APT1 by a STIX report give a hypothesis, never stronger than overlap allows."""
    from mamori.intel.store import import_files, read

    report = data_dir / "threat-intel/stix2.1-examples/examples/threat-reports/apt1.json"
    import_files([report], tmp_path)
    indicators = read(tmp_path)
    linked = indicators.filter(
        pl.col("related").list.eval(pl.element().str.contains("APT1")).list.any()
    )
    ind = linked.row(0, named=True)
    alert = _a("intel.match", "T1071", "medium", 0.5, "10.0.0.5", None, 0)
    alert["key"] = f"intel.match|{ind['id']}|10.0.0.5"
    [inc] = correlate(_df([alert]), indicators=indicators)
    names = [h["name"] for h in inc.attribution]
    assert "APT1" in names
    h = inc.attribution[names.index("APT1")]
    assert h["type"] == "intrusion-set" and h["confidence_level"] == "low"
    assert h["score"] <= 0.5 and h["likelihood"] in (
        "unlikely",
        "very unlikely",
        "remote",
        "roughly even chance",
    )
    assert h["evidence_for"][0]["indicator"].endswith(ind["value"]) and h["evidence_for"][0][
        "hosts"
    ] == ["10.0.0.5"]
    assert any("overlap only" in x for x in h["evidence_against"])
    # Without intel matches there is nothing to attribute.
    assert (
        correlate(
            _df([_a("scan.trw", "T1046", "low", 0.5, "1.2.3.4", "10.0.0.5", 0)]),
            indicators=indicators,
        )[0].attribution
        == []
    )


def test_incident_domains_are_its_alerts_domains(data_dir) -> None:
    """A DNS tunnel's zone reaches the incident's entities, where a sinkhole profile finds it."""
    from mamori.detect.engine import run_detectors
    from support.golden import capture_frames

    frames = capture_frames(
        data_dir
        / "evtx-attack-samples/Command and Control/cmds over dns txt queries and reponses.pcap"
    )
    alerts = run_detectors(frames, only=["dns.tunnel"]).alerts
    [incident] = correlate(alerts)
    assert incident.domains == ["ostrykebs.pl"]
    assert all(a["domains"] == ["ostrykebs.pl"] for a in incident.to_json()["alerts"])


def test_host_names_in_logs_join_the_addresses_in_network_records() -> None:
    """A Windows logon brute force names the computer; the network scan names its address."""
    rows = [
        _a("scan.trw", "T1046", "low", 0.5, "203.0.113.9", "10.0.0.5", 0),
        _a("auth.bruteforce", "T1110.001", "medium", 0.7, "198.51.100.7", "PC01.example.corp", 20),
        _a("win.log_cleared", "T1070.001", "high", 0.8, None, "pc01", 30),
    ]
    apart = correlate(_df(rows))
    assert len(apart) == 3  # without knowing the names, nothing links them
    aliases = host_aliases(["pc01.example.corp=10.0.0.5"])
    [inc] = correlate(_df(rows), aliases=aliases)
    assert inc.victims == ["10.0.0.5"]
    assert inc.attackers == ["198.51.100.7", "203.0.113.9"]
    # The alerts keep the names their logs used: the analyst sees what the evidence says.
    assert {a["dst"] for a in inc.alerts} == {"10.0.0.5", "PC01.example.corp", "pc01"}


def test_host_aliases_reject_what_is_not_name_equals_address() -> None:
    import pytest

    assert host_aliases(["DC1.corp.example=10.0.0.1"]) == {
        "dc1.corp.example": "10.0.0.1",
        "dc1": "10.0.0.1",
    }
    with pytest.raises(ValueError, match="not name=address"):
        host_aliases(["dc1"])
