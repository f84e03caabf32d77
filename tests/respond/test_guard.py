"""The guard: every rule on its own, and property tests that no sequence of decisions — however
tricky its targets — gets an enforceable verdict the independent oracle (roe.py) would refuse."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.respond.decision import Action, Decision, Judgement, Verdict
from mamori.respond.guard import Guard
from mamori.respond.policy import Policy, parse_policy
from respond.roe import assets, decisions, enforceable_problems, policies

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def d(action: str, target: str, confidence: float = 0.9, ttl: float = 3600) -> Decision:
    return Decision(Action(action), target, "test", "INC-1", confidence, ttl)  # type: ignore[arg-type]


def judge(policy: Policy, *args: object, **kw: object) -> Judgement:
    return Guard(policy).judge(d(*args, **kw), NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "touched"),
    [
        ("172.18.0.9", "172.18.0.0/24"),  # inside own
        ("172.18.0.0/23", "172.18.0.0/24"),  # a supernet of own
        ("172.18.0.128/25", "172.18.0.0/24"),  # a subnet of own
        ("::ffff:172.18.0.9", "172.18.0.0/24"),  # IPv4-mapped
        ("64:ff9b::ac12:9", "172.18.0.0/24"),  # NAT64
        ("2002:ac12:0009::/48", "172.18.0.0/24"),  # 6to4
        ("2001:db8:1::/48", "2001:db8::/32"),
        ("8.8.8.8", "8.8.8.8"),  # well-known resolver
        ("192.0.2.53", "192.0.2.53"),  # the site's resolver
        ("203.0.113.77", "203.0.113.0/25"),  # partner
        ("127.0.0.1", "127.0.0.0/8"),  # always protected
    ],
)
def test_protected_addresses_are_never_blocked(policy: Policy, target: str, touched: str) -> None:
    j = judge(policy, "block_ip", target)
    assert j.verdict is Verdict.deny
    assert any(touched in r for r in j.reasons), j.reasons


@pytest.mark.parametrize(
    "target", ["www.EXAMPLE.org.", "example.org", "*.example.org", "a.b.partner.example", "org"]
)
def test_protected_domains_and_their_parents_are_never_blocked(policy: Policy, target: str) -> None:
    for action in ("block_domain", "sinkhole", "notify"):
        j = judge(policy, action, target)
        assert j.verdict is Verdict.deny
        assert any("touches protected" in r for r in j.reasons), j.reasons


def test_an_outside_attacker_is_allowed_and_its_target_made_canonical(policy: Policy) -> None:
    j = judge(policy, "block_ip", "5.6.7.8/32")
    assert j.verdict is Verdict.allow
    assert j.decision.target == "5.6.7.8"
    j = judge(policy, "block_domain", "Evil.COM.")
    assert (j.verdict, j.decision.target) == (Verdict.allow, "evil.com")


def test_widest_prefix_is_per_family(policy: Policy) -> None:
    assert judge(policy, "block_ip", "5.6.7.0/24").verdict is Verdict.allow
    j = judge(policy, "block_ip", "5.6.0.0/23")
    assert j.verdict is Verdict.deny and any("wider than /24" in r for r in j.reasons)
    assert judge(policy, "block_ip", "2a00:1::/48").verdict is Verdict.allow
    assert judge(policy, "block_ip", "2a00:1::/47").verdict is Verdict.deny
    # a /120 of IPv4-mapped space is an IPv4 /24; a /104 is a /8
    assert judge(policy, "block_ip", "::ffff:5.6.7.0/120").verdict is Verdict.allow
    j = judge(policy, "block_ip", "::ffff:5.0.0.0/104")
    assert j.verdict is Verdict.deny and any("IPv4" in r for r in j.reasons)


def test_host_bits_are_cleared_before_judging(policy: Policy) -> None:
    j = judge(policy, "block_ip", "5.6.7.8/8")
    assert j.decision.target == "5.0.0.0/8" and j.verdict is Verdict.deny


def test_least_confidence_per_action(policy: Policy) -> None:
    assert judge(policy, "block_ip", "5.6.7.8", confidence=0.5).verdict is Verdict.allow
    j = judge(policy, "block_ip", "5.6.7.8", confidence=0.49)
    assert j.verdict is Verdict.deny and "below 0.50" in " ".join(j.reasons)
    j = judge(policy, "quarantine", "172.18.0.7", confidence=0.79)
    assert j.verdict is Verdict.deny and "below 0.80" in " ".join(j.reasons)
    for bad in (math.nan, -0.1, 1.01):
        assert judge(policy, "block_ip", "5.6.7.8", confidence=bad).verdict is Verdict.deny


@pytest.mark.parametrize("ttl", [0, -5, math.inf, math.nan, 2.5, None, "4h"])
def test_a_decision_without_finite_positive_ttl_is_denied(policy: Policy, ttl: object) -> None:
    j = judge(policy, "block_ip", "5.6.7.8", ttl=ttl)
    assert j.verdict is Verdict.deny
    assert any("ttl" in r for r in j.reasons)


def test_overlong_ttl_is_clamped_or_denied_as_the_policy_says(policy: Policy) -> None:
    j = judge(policy, "block_ip", "5.6.7.8", ttl=7 * 86400)
    assert j.verdict is Verdict.allow and j.decision.ttl == 86400
    assert "ttl clamped from 7d to 1d" in j.reasons
    strict = parse_policy("protected: {own: [10.0.0.0/8]}\nmax_ttl: 1h\nover_ttl: deny\n", "p")
    j = judge(strict, "block_ip", "5.6.7.8", ttl=3601)
    assert j.verdict is Verdict.deny and j.decision.ttl == 3601


def test_quarantine_needs_an_own_host_and_approval(policy: Policy) -> None:
    j = judge(policy, "quarantine", "172.18.0.7")
    assert j.verdict is Verdict.needs_approval and j.decision.ttl == 3600
    assert judge(policy, "quarantine", "5.6.7.8").verdict is Verdict.deny  # not ours
    assert judge(policy, "quarantine", "172.18.0.0/30").verdict is Verdict.deny  # not one host
    assert judge(policy, "quarantine", "172.18.0.53").verdict is Verdict.deny  # critical


def test_all_reasons_are_given(policy: Policy) -> None:
    j = judge(policy, "block_ip", "172.18.0.0/16", confidence=0.1, ttl=0)
    text = " ".join(j.reasons)
    assert j.verdict is Verdict.deny
    for part in ("touches protected", "wider than /24", "below 0.50", "ttl 0"):
        assert part in text


def test_targets_of_the_wrong_kind_are_denied(policy: Policy) -> None:
    assert judge(policy, "block_ip", "evil.com").verdict is Verdict.deny
    assert judge(policy, "sinkhole", "5.6.7.8").verdict is Verdict.deny
    assert judge(policy, "block_domain", "bad name.com").verdict is Verdict.deny
    assert judge(policy, "notify", "5.6.7.8").verdict is Verdict.allow
    assert judge(policy, "notify", "abuse-target.net").verdict is Verdict.allow


def test_rate_limit_counts_a_sliding_minute() -> None:
    p = parse_policy("protected: {own: [10.0.0.0/8]}\nmax_per_minute: 2\n", "p")
    g = Guard(p)
    verdicts = [g.judge(d("block_ip", f"5.6.7.{i}"), NOW).verdict for i in range(3)]
    assert verdicts == [Verdict.allow, Verdict.allow, Verdict.needs_approval]
    later = NOW + timedelta(seconds=61)
    assert g.judge(d("block_ip", "5.6.7.9"), later).verdict is Verdict.allow
    deny = parse_policy("protected: {own: [10.0.0.0/8]}\nmax_per_minute: 0\nover_rate: deny\n", "p")
    assert Guard(deny).judge(d("block_ip", "5.6.7.8"), NOW).verdict is Verdict.deny
    seeded = Guard(p, recent=[NOW - timedelta(seconds=10)] * 2)
    assert seeded.judge(d("block_ip", "5.6.7.8"), NOW).verdict is Verdict.needs_approval


def test_disabled_actions_are_denied() -> None:
    p = parse_policy("protected: {own: [10.0.0.0/8]}\nactions: [notify]\n", "p")
    assert Guard(p).judge(d("block_ip", "5.6.7.8"), NOW).verdict is Verdict.deny
    assert Guard(p).judge(d("notify", "5.6.7.8"), NOW).verdict is Verdict.allow


# ----------------------------------------------------------------------------- properties


@settings(max_examples=120)
@given(policy=policies(), batch=st.lists(decisions(), min_size=1, max_size=30))
def test_no_sequence_of_decisions_enforces_what_the_policy_forbids(
    policy: Policy, batch: list[Decision]
) -> None:
    """Allowed decisions, and needs_approval ones a person would approve (the ledger re-checks
    the hard rules), are what gets enforced: none may touch a protected asset, be wider than
    allowed or lack a finite expiry, by the oracle's independent reading."""
    guard = Guard(policy)
    protected = assets(dict(policy.raw))
    for n, decision in enumerate(batch):
        j = guard.judge(decision, NOW + timedelta(seconds=n))
        if j.verdict is Verdict.deny:
            assert j.reasons
            continue
        problems = enforceable_problems(j.decision, policy, protected)
        assert not problems, (decision, j)
        if j.verdict is Verdict.needs_approval:
            _, denials, _, _ = guard.check(j.decision)  # what approval re-checks
            assert not denials
        assert j.decision.expires > NOW


@settings(max_examples=60)
@given(policy=policies(), decision=decisions())
def test_judging_is_idempotent_on_the_judged_decision(policy: Policy, decision: Decision) -> None:
    """Re-judging what the guard produced (as approval does) never turns a verdict around."""
    first = Guard(policy).check(decision)
    again = Guard(policy).check(first[0])
    assert again[0] == first[0]
    assert bool(again[1]) == bool(first[1])


@settings(max_examples=60)
@given(
    limit=st.integers(0, 5),
    gaps=st.lists(st.floats(0, 40, allow_nan=False), min_size=1, max_size=40),
)
def test_no_minute_allows_more_than_the_limit(limit: int, gaps: list[float]) -> None:
    """However decisions are spaced, no 60-second window holds more allowed ones than the limit."""
    p = parse_policy(f"protected: {{own: [10.0.0.0/8]}}\nmax_per_minute: {limit}\n", "p")
    guard = Guard(p)
    t, allowed = NOW, []
    for n, gap in enumerate(gaps):
        t += timedelta(seconds=gap)
        if guard.judge(d("block_ip", f"5.6.{n // 256}.{n % 256}"), t).verdict is Verdict.allow:
            allowed.append(t)
    for i, start in enumerate(allowed):
        in_window = [a for a in allowed[i:] if a < start + timedelta(minutes=1)]
        assert len(in_window) <= limit


def test_a_whole_float_ttl_is_enforced_as_an_integer(policy: Policy) -> None:
    j = judge(policy, "block_ip", "5.6.7.8", ttl=3600.0)
    assert j.verdict is Verdict.allow and j.decision.ttl == 3600 and type(j.decision.ttl) is int
