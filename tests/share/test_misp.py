"""MISP export: the event mamori writes imports back through mamori's own MISP importer (the
format of the shared MISP events) with the same indicators, TLP and ATT&CK galaxy tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.intel.misp import load as load_misp
from mamori.share.misp import attack_tag, dumps, event
from mamori.share.observables import incident_observables
from mamori.share.stix import ExportError, ExportOptions, report_bundle
from mamori.share.tlp import Tlp, parse_tlp

from .conftest import PARTNER_INDICATOR


def _round_trip(ev: dict[str, Any], tmp_path: Path) -> dict[tuple[str, str], str]:
    path = tmp_path / "event.json"
    path.write_text(dumps(ev))
    got = load_misp(path, "red")
    return {(i.type, i.value): str(i.tlp) for i in got.indicators}


@pytest.mark.parametrize("name", ["beacon", "sshguess", "amplification"])
def test_round_trip_gives_the_same_indicators_as_stix(
    reports: dict[str, dict[str, Any]], name: str, tmp_path: Path
) -> None:
    incs = reports[name]["incidents"]
    opt = ExportOptions(tlp=Tlp.GREEN, private_addresses=True)
    imported = _round_trip(event(incs, "t", name, opt), tmp_path)
    expected = {o.key for inc in incs for o in incident_observables(inc, private_addresses=True)}
    assert expected, f"{name}: nothing to share"
    assert set(imported) == expected
    stix = {
        o["pattern"].split("'")[1]
        for o in report_bundle(reports[name], opt)["objects"]
        if o["type"] == "indicator"
    }
    assert {v for _, v in imported} == stix
    assert all(parse_tlp(t) >= Tlp.GREEN for t in imported.values())


def test_event_tags_tlp_and_attack_galaxies(
    reports: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    incs = reports["amplification"]["incidents"]
    ev = event(incs, "amplification", "k", ExportOptions(tlp=Tlp.CLEAR))["Event"]
    tags = [t["name"] for t in ev["Tag"]]
    # strictest content wins on the event: the partner's AMBER indicator is inside
    assert tags[0] == "tlp:amber"
    assert {attack_tag(t) for t in incs[0]["techniques"]} <= set(tags)
    assert 'misp-galaxy:mitre-attack-pattern="Reflection Amplification - T1498.002"' in tags
    imported = _round_trip({"Event": ev}, tmp_path)
    assert imported[("ip", PARTNER_INDICATOR)] == "amber"  # never below what the partner said
    hyp = [a for a in ev["Attribute"] if a["category"] == "Attribution"]
    assert hyp and not hyp[0]["to_ids"] and "overlap" in hyp[0]["value"]


def test_event_is_deterministic(reports: dict[str, dict[str, Any]]) -> None:
    incs = reports["amplification"]["incidents"]
    a = dumps(event(incs, "x", "k"))
    assert a == dumps(event(json.loads(json.dumps(incs)), "x", "k"))
    assert json.loads(a)["Event"]["uuid"] != event(incs, "x", "other")["Event"]["uuid"]


def test_nothing_to_export_is_an_error() -> None:
    with pytest.raises(ExportError, match="no incidents"):
        event([], "x", "k")
    with pytest.raises(ExportError, match="first_seen"):
        event([{"id": "INC-1", "alerts": []}], "x", "k")


# A synthetic incident whose observables are drawn at random: each must come back, same value.
public_v4 = st.ip_addresses(v=4).filter(lambda a: a.is_global).map(str)
labels = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
domains = st.lists(labels, min_size=2, max_size=3).map(".".join)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(attackers=st.lists(public_v4, max_size=4), names=st.lists(domains, max_size=3))
def test_any_incident_round_trips(attackers: list[str], names: list[str], tmp_path: Path) -> None:
    inc = {
        "id": "INC-000000000001",
        "title": "t",
        "severity": "high",
        "confidence": 0.9,
        "techniques": ["T1046"],
        "entities": {"attackers": attackers, "victims": [], "domains": names},
        "first_seen": "2024-01-01T00:00:00+00:00",
        "last_seen": "2024-01-01T01:00:00+00:00",
        "alerts": [],
    }
    expected = {o.key for o in incident_observables(inc)}
    if not expected:
        return
    assert set(_round_trip(event([inc], "t", "k"), tmp_path)) == expected


hexes = lambda n: st.text("0123456789abcdef", min_size=n, max_size=n)  # noqa: E731
url_paths = st.text(st.sampled_from("abcxyz019/-_.~=&?%"), max_size=15)
intel_values = st.one_of(
    st.tuples(st.just("ip"), st.ip_addresses().map(str)),
    st.tuples(st.just("domain"), domains),
    st.tuples(st.just("url"), st.tuples(domains, url_paths).map(lambda t: f"{t[0]}/{t[1]}")),
    st.tuples(st.just("sha256"), hexes(64)),
    st.tuples(st.just("md5"), hexes(32)),
    st.tuples(st.just("ja3"), hexes(32)),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=15)
@given(
    matches=st.lists(st.tuples(intel_values, st.sampled_from(list(Tlp))), min_size=1, max_size=4),
    level=st.sampled_from(list(Tlp)),
)
def test_intel_of_every_kind_round_trips_and_validates(
    matches: list[tuple[tuple[str, str], Tlp]], level: Tlp, tmp_path: Path
) -> None:
    """What intel matched (any kind, any TLP) comes back from MISP with the same value and no
    lower TLP, and makes a valid STIX bundle."""
    from mamori.share.stix import incidents_bundle, validate

    alerts = [
        {
            "detector": "intel.match",
            "techniques": ["T1071"],
            "severity": "high",
            "confidence": 0.9,
            "summary": f"10.0.0.1 matched {k} indicator {v} from feed (TLP:{t.label.upper()}, x)"
            " in conn: 1 record(s)",
            "src": "10.0.0.1",
            "dst": None,
            "first_seen": "2024-01-01T00:00:00+00:00",
            "last_seen": "2024-01-01T00:10:00+00:00",
            "count": 1,
        }
        for (k, v), t in matches
    ]
    inc = {
        "id": "INC-00000000000a",
        "title": "t",
        "severity": "high",
        "confidence": 0.9,
        "techniques": ["T1071"],
        "entities": {"attackers": [], "victims": [], "domains": []},
        "first_seen": "2024-01-01T00:00:00+00:00",
        "last_seen": "2024-01-01T00:10:00+00:00",
        "alerts": alerts,
    }
    expected = {o.key: o for o in incident_observables(inc)}
    assert len(expected) >= 1
    got = _round_trip(event([inc], "t", "k", ExportOptions(tlp=level)), tmp_path)
    assert set(got) == set(expected)
    for key, tlp in got.items():
        assert parse_tlp(tlp) >= max(level, expected[key].tlp or Tlp.CLEAR)
    assert validate(incidents_bundle([inc], ExportOptions(tlp=level))) == []


def test_importer_takes_the_strictest_of_several_tlp_tags(tmp_path: Path) -> None:
    """The intel bug fix this stage needed: an event tagged tlp:green and tlp:amber was read as
    GREEN (the first tag), so an exported event could come back more shareable than it left."""
    ev = {
        "Event": {
            "info": "two tags",
            "Tag": [{"name": "tlp:green"}, {"name": "tlp:amber"}],
            "Attribute": [
                {"type": "ip-dst", "value": "8.8.8.8", "to_ids": True},
                {
                    "type": "domain",
                    "value": "a.example",
                    "Tag": [{"name": "TLP:WHITE"}, {"name": "tlp:red"}],
                },
            ],
        }
    }
    assert _round_trip(ev, tmp_path) == {("ip", "8.8.8.8"): "amber", ("domain", "a.example"): "red"}
