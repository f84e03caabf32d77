"""Profiles: CrowdSec-like YAML turning incidents and alerts into proposed decisions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mamori.respond.decision import Action
from mamori.respond.incidents import Alert, Incident, load_report
from mamori.respond.profiles import ProfileError, load_profiles, parse_profiles


def incident(**kw: object) -> Incident:
    base: dict = {
        "id": "INC-1",
        "title": "Brute Force by 5.6.7.8",
        "severity": "high",
        "confidence": 0.8,
        "techniques": ("T1110.001",),
        "attackers": ("5.6.7.8",),
        "victims": ("192.0.2.10",),
        "domains": ("evil.example",),
        "alerts": (
            Alert(
                "bruteforce.ssh", ("T1110.001",), "high", 0.8, "guessing", "5.6.7.8", "192.0.2.10"
            ),
            Alert(
                "c2.beaconing", ("T1071",), "low", 0.9, "beacon", "192.0.2.10", "c2.evil.example"
            ),
        ),
    }
    base.update(kw)
    return Incident(**base)


ONE = """
name: bf
filters:
  - techniques: [T1110]
    severity: medium
    confidence: 0.7
    detectors: ["bruteforce.*"]
    has: [attackers]
decisions:
  - {action: block_ip, target: attackers, ttl: 4h, reason: "{profile} {incident} {target}"}
on_success: break
---
name: never_reached_after_break
filters: [{}]
decisions:
  - {action: notify, target: victims, ttl: 1h}
"""


def test_a_matching_profile_proposes_and_breaks() -> None:
    (p,) = parse_profiles(ONE).propose([incident()])
    d = p.decision
    assert (p.profile, d.action, d.target, d.ttl, d.incident) == (
        "bf",
        Action.block_ip,
        "5.6.7.8",
        14400,
        "INC-1",
    )
    assert d.reason == "bf INC-1 5.6.7.8" and d.confidence == 0.8


@pytest.mark.parametrize(
    "changes",
    [
        {"severity": "low"},
        {"confidence": 0.69},
        {"techniques": ("T1046",)},
        {"attackers": ()},
        {"alerts": ()},  # no bruteforce.* detector among its alerts
    ],
)
def test_each_filter_key_must_hold(changes: dict) -> None:
    proposed = parse_profiles(ONE).propose([incident(**changes)])
    assert [p.profile for p in proposed] == ["never_reached_after_break"]


def test_any_filter_of_the_list_applies() -> None:
    text = ONE.replace(
        "filters:\n  - techniques", "filters:\n  - {severity: critical}\n  - techniques"
    )
    assert parse_profiles(text).propose([incident()])[0].profile == "bf"
    assert (
        parse_profiles(text).propose([incident(severity="critical", techniques=())])[0].profile
        == "bf"
    )


def test_alert_profiles_take_src_and_dst_of_the_matching_alert_by_kind() -> None:
    text = """
name: c2
match: alert
filters: [{detectors: [c2.*]}]
decisions:
  - {action: block_ip, target: dst, ttl: 1h}
  - {action: sinkhole, target: dst, ttl: 1h}
  - {action: quarantine, target: src, ttl: 1h}
"""
    got = {
        (p.decision.action, p.decision.target, p.decision.confidence)
        for p in parse_profiles(text).propose([incident()])
    }
    # dst is a name: sinkhole takes it, block_ip does not; confidence is the alert's
    assert got == {
        (Action.sinkhole, "c2.evil.example", 0.9),
        (Action.quarantine, "192.0.2.10", 0.9),
    }


def test_the_same_decision_is_proposed_once() -> None:
    text = ONE.replace("on_success: break", "on_success: continue")
    proposed = parse_profiles(
        text + "\n---\n" + ONE.replace("name: bf", "name: bf2").split("---")[0]
    ).propose([incident(), incident()])
    ids = [p.decision.id for p in proposed]
    assert len(ids) == len(set(ids)) == 2  # block_ip once (bf), notify once


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: a\nfilters: [{}]\ndecisions: [{action: ban, target: attackers, ttl: 1h}]", "decisions[0].action: 'ban' is not an action"),
        ("name: a\nfilters: [{}]\ndecisions: [{action: block_ip, target: domains, ttl: 1h}]", "decisions[0].target: block_ip takes addresses"),
        ("name: a\nfilters: [{}]\ndecisions: [{action: sinkhole, target: attackers, ttl: 1h}]", "sinkhole takes names"),
        ("name: a\nfilters: [{}]\ndecisions: [{action: block_ip, target: attackers}]", "decisions[0].ttl: missing"),
        ("name: a\nfilters: [{}]\ndecisions: [{action: block_ip, target: attackers, ttl: 0}]", "decisions[0].ttl: 0 is not"),
        ("name: a\nfilters: [{severity: huge}]\ndecisions: [{action: notify, target: src, ttl: 1h}]", "filters[0].severity"),
        ("name: a\nfilters: [{technique: [T1]}]\ndecisions: [{action: notify, target: src, ttl: 1h}]", "filters[0].technique: unknown filter"),
        ("name: a\nfilters: []\ndecisions: [{action: notify, target: src, ttl: 1h}]", "filters: must be a non-empty list"),
        ("name: a\nfilters: [{}]\ndecisions: [{action: notify, target: src, ttl: 1h, reason: '{nope}'}]", "bad placeholder"),
        ("filters: [{}]\ndecisions: []", "profile 1: name: missing"),
        ("name: a\nfilters: [{}]\ndecisions: [{action: notify, target: src, ttl: 1h}]\n---\nname: a\nfilters: [{}]\ndecisions: [{action: notify, target: src, ttl: 1h}]", "profile 'a': name: used twice"),
    ],
)  # fmt: skip
def test_errors_name_file_profile_and_key(text: str, message: str) -> None:
    with pytest.raises(ProfileError) as e:
        parse_profiles(text, "p.yaml")
    assert str(e.value).startswith("p.yaml: profile ") and message in str(e.value)


def test_a_local_file_is_read_first(tmp_path: Path) -> None:
    (tmp_path / "profiles.yaml").write_text(ONE.split("---")[1])
    (tmp_path / "profiles.local.yaml").write_text(ONE.split("---")[0])
    assert [p.name for p in load_profiles(tmp_path / "profiles.yaml").profiles] == [
        "bf",
        "never_reached_after_break",
    ]


def test_shipped_profiles_on_real_patrol_reports(
    sandcat_report: Path, sshguess_report: Path
) -> None:
    shipped = load_profiles()
    assert len(shipped.profiles) >= 5
    c2 = {
        (p.profile, p.decision.action, p.decision.target)
        for p in shipped.propose(load_report(sandcat_report))
    }
    assert ("c2_beaconing", Action.block_ip, "172.18.0.2") in c2  # the controller
    assert ("c2_beaconing", Action.quarantine, "172.18.0.3") in c2  # the beaconing host
    bf = {
        (p.profile, p.decision.action, p.decision.target)
        for p in shipped.propose(load_report(sshguess_report))
    }
    assert ("bruteforce", Action.block_ip, "192.168.56.1") in bf
    assert all(p.decision.ttl > 0 for p in shipped.propose(load_report(sshguess_report)))


_yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 10) | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=15,
)
_keys = st.sampled_from(["name", "match", "filters", "decisions", "on_success", "x"])


@given(st.lists(st.dictionaries(_keys, _yaml_values, max_size=5), max_size=3))
def test_any_profiles_document_loads_or_is_refused_with_a_profile_error(docs: list[dict]) -> None:
    text = "\n---\n".join(yaml.safe_dump(doc) for doc in docs)
    try:
        profiles = parse_profiles(text, "fuzz.yaml")
    except ProfileError as e:
        assert str(e).startswith("fuzz.yaml: ")
    else:  # what loaded proposes only well-formed decisions
        for p in profiles.propose([incident()]):
            assert p.decision.ttl > 0 and isinstance(p.decision.action, Action)
