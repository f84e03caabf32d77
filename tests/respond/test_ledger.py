"""The ledger on SQLite and a real PostgreSQL: plan → judge → store, approve/reject, expire, what
is enforced now, and the audit entries of each step — driven by real patrol reports."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.respond.decision import Action, Decision, State, Verdict
from mamori.respond.ledger import Entry, Ledger, LedgerError
from mamori.respond.policy import Policy, parse_policy
from mamori.respond.profiles import parse_profiles
from mamori.respond.tables import audit, audit_head, decisions
from mamori.store import Store
from respond.roe import assets, confidences, enforceable_problems, policies, targets

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def by_target(entries: list[Entry]) -> dict[tuple[Action, str], Entry]:
    return {(e.decision.action, e.decision.target): e for e in entries}


def test_plan_judges_and_stores_a_real_report(
    store: Store, policy: Policy, sandcat_report: Path
) -> None:
    ledger = Ledger(store, policy)
    entries = by_target(ledger.plan(sandcat_report, now=T0))
    controller = entries[(Action.block_ip, "172.18.0.2")]  # inside own: the guard says no
    assert controller.verdict is Verdict.deny and controller.state is State.denied
    assert any("touches protected 172.18.0.0/24 (own)" in r for r in controller.reasons)
    host = entries[(Action.quarantine, "172.18.0.3")]
    assert host.verdict is Verdict.needs_approval and host.state is State.pending
    assert host.decision.ttl == 3600 and host.proposed_ttl == 14400  # clamped to max_ttl
    assert host.profile == "c2_beaconing" and host.decision.incident.startswith("INC-")
    assert ledger.active(T0) == []
    assert {e.id for e in ledger.list()} == {e.id for e in entries.values()}
    assert [e.id for e in ledger.list("pending")] == [host.id]


def test_allowed_decisions_are_enforced_at_once_for_their_ttl(
    store: Store, policy: Policy, sshguess_report: Path
) -> None:
    ledger = Ledger(store, policy)
    (entry,) = [e for e in ledger.plan(sshguess_report, now=T0) if e.verdict is Verdict.allow]
    assert (entry.decision.action, entry.decision.target) == (Action.block_ip, "192.168.56.1")
    assert entry.state is State.approved and entry.by == "guard"
    assert entry.expires == T0 + timedelta(hours=4)
    assert ledger.active(T0 + timedelta(hours=3, minutes=59)) == [entry.decision]
    assert ledger.active(T0 + timedelta(hours=4)) == []
    events = [a.event for a in ledger.audit_entries(entry.id)]
    assert events == ["proposed", "judged", "approved"]


def test_approve_reject_and_expire(store: Store, policy: Policy, sandcat_report: Path) -> None:
    ledger = Ledger(store, policy)
    entries = by_target(ledger.plan(sandcat_report, now=T0))
    host = entries[(Action.quarantine, "172.18.0.3")]
    denied = entries[(Action.block_ip, "172.18.0.2")]

    with pytest.raises(LedgerError, match="is denied; only pending decisions can be approved"):
        ledger.approve(denied.id, by="alice", now=T0)
    with pytest.raises(LedgerError, match="no decision"):
        ledger.approve("d-0000000000000000", now=T0)

    later = T0 + timedelta(minutes=30)
    approved = ledger.approve(host.id, by="alice", now=later)
    assert approved.state is State.approved and approved.by == "alice"
    assert approved.expires == later + timedelta(hours=1)  # the TTL runs from approval
    assert ledger.active(later) == [approved.decision]
    with pytest.raises(LedgerError, match="is approved"):
        ledger.approve(host.id, now=later)
    with pytest.raises(LedgerError, match="only pending decisions can be rejected"):
        ledger.reject(host.id, now=later)

    assert ledger.expire(later + timedelta(minutes=59)) == []
    gone = ledger.expire(later + timedelta(hours=1))
    assert [d.id for d in gone] == [host.id]
    assert ledger.get(host.id).state is State.expired
    assert ledger.active(later + timedelta(hours=1)) == []
    assert ledger.expire(later + timedelta(hours=2)) == []  # expired once only
    events = [a.event for a in ledger.audit_entries(host.id)]
    assert events == ["proposed", "judged", "approved", "expired"]
    assert ledger.verify_audit().ok


def test_rejected_decisions_stay_rejected(
    store: Store, policy: Policy, sandcat_report: Path
) -> None:
    ledger = Ledger(store, policy)
    host = by_target(ledger.plan(sandcat_report, now=T0))[(Action.quarantine, "172.18.0.3")]
    assert ledger.reject(host.id, by="bob", now=T0).state is State.rejected
    with pytest.raises(LedgerError, match="is rejected"):
        ledger.approve(host.id, now=T0)
    again = by_target(ledger.plan(sandcat_report, now=T0 + timedelta(hours=1)))
    assert again[(Action.quarantine, "172.18.0.3")].state is State.rejected  # re-plan keeps it
    assert [a.event for a in ledger.audit_entries(host.id)][-1] == "rejected"


def test_replanning_keeps_states_and_rejudges_denials(
    store: Store, policy: Policy, sandcat_report: Path
) -> None:
    first = by_target(Ledger(store, policy).plan(sandcat_report, now=T0))
    looser = parse_policy(
        "protected: {own: [10.0.0.0/8, 172.18.0.3]}\napproval: [quarantine]\n", "looser.yaml"
    )
    second = by_target(Ledger(store, looser).plan(sandcat_report, now=T0 + timedelta(hours=1)))
    assert first.keys() == second.keys()
    block = second[(Action.block_ip, "172.18.0.2")]
    assert block.verdict is Verdict.allow and block.policy == "looser.yaml"  # re-judged
    assert second[(Action.quarantine, "172.18.0.3")].state is State.pending  # unchanged


def test_approval_cannot_override_what_the_current_policy_denies(
    store: Store, policy: Policy, sandcat_report: Path
) -> None:
    host = by_target(Ledger(store, policy).plan(sandcat_report, now=T0))[
        (Action.quarantine, "172.18.0.3")
    ]
    stricter = parse_policy(
        "protected: {own: [172.18.0.0/24], critical: [172.18.0.3]}\napproval: [quarantine]\n", "s"
    )
    ledger = Ledger(store, stricter)
    with pytest.raises(LedgerError, match=r"cannot be approved: s denies it: target 172\.18\.0\.3"):
        ledger.approve(host.id, by="mallory", now=T0)
    assert ledger.get(host.id).state is State.pending
    assert ledger.active(T0) == []
    assert [a.event for a in ledger.audit_entries(host.id)][-1] == "refused"


def test_the_rate_limit_survives_a_new_ledger(store: Store) -> None:
    p = parse_policy("protected: {own: [10.0.0.0/8]}\nmax_per_minute: 1\n", "p")

    def one(target: str, now: datetime) -> Verdict:
        (e,) = Ledger(store, p).submit(
            [Decision(Action.block_ip, target, "r", "INC-x", 0.9, 600)], now
        )
        return e.verdict

    assert one("5.6.7.1", T0) is Verdict.allow
    assert one("5.6.7.2", T0 + timedelta(seconds=30)) is Verdict.needs_approval
    assert one("5.6.7.3", T0 + timedelta(seconds=61)) is Verdict.allow


def test_another_spelling_of_an_enforced_decision_changes_nothing(store: Store) -> None:
    p = parse_policy("protected: {own: [10.0.0.0/8]}\n", "p")
    ledger = Ledger(store, p)

    def submit(target: str, now: datetime) -> list[Entry]:
        return ledger.submit([Decision(Action.block_domain, target, "r", "INC-x", 0.9, 600)], now)

    (first,) = submit("evil.example", T0)
    (again,) = submit("EVIL.example.", T0 + timedelta(seconds=5))
    assert again == first and again.expires == T0 + timedelta(seconds=600)
    assert len(ledger.list()) == 1 and len(ledger.audit_entries()) == 3
    log = ledger.audit_entries(first.id)  # the proposal is filed under the stored id
    assert [a.event for a in log] == ["proposed", "judged", "approved"]


def test_a_denied_spelling_is_audited_under_its_canonical_id(store: Store) -> None:
    p = parse_policy("protected: {own: [10.0.0.0/8]}\n", "p")
    ledger = Ledger(store, p)
    (e,) = ledger.submit([Decision(Action.block_ip, "10.1.2.3/32", "r", "INC-x", 0.9, 600)], T0)
    assert e.decision.target == "10.1.2.3" and e.state is State.denied
    proposed, judged = ledger.audit_entries(e.id)
    assert (proposed.event, proposed.body["target"]) == ("proposed", "10.1.2.3/32")
    assert (judged.event, judged.body["target"], judged.body["verdict"]) == (
        "judged",
        "10.1.2.3",
        "deny",
    )


def test_applied_changes_are_audited(store: Store, policy: Policy, sshguess_report: Path) -> None:
    ledger = Ledger(store, policy)
    active = ledger.active(T0) or [
        e.decision for e in ledger.plan(sshguess_report, now=T0) if e.enforced
    ]
    ledger.applied("nftables", added=active, now=T0)
    ledger.applied("nftables", removed=active, now=T0 + timedelta(hours=4))
    log = ledger.audit_entries(active[0].id)
    assert [(a.event, a.body.get("op")) for a in log][-2:] == [
        ("applied", "add"),
        ("applied", "remove"),
    ]
    assert log[-1].body["point"] == "nftables" and ledger.verify_audit().ok


def test_plan_needs_a_policy(store: Store, sshguess_report: Path) -> None:
    with pytest.raises(LedgerError, match="needs a policy"):
        Ledger(store).plan(sshguess_report)


# ------------------------------------------------------------------------------ property

EVERYTHING = parse_profiles(
    """
name: everything
filters: [{}]
decisions:
"""
    + "".join(
        f"  - {{action: {a}, target: {t}, ttl: {ttl}}}\n"
        for a, t, ttl in [
            ("block_ip", "attackers", "3d"),
            ("block_ip", "dst", "1h"),
            ("rate_limit", "victims", "2h"),
            ("quarantine", "src", "30d"),
            ("sinkhole", "domains", "1h"),
            ("block_domain", "dst", "12h"),
            ("notify", "attackers", "1w"),
            ("notify", "domains", "1s"),
        ]
    ),
    "everything.yaml",
)


@st.composite
def reports(draw: st.DrawFn) -> dict:
    incidents = []
    for n in range(draw(st.integers(1, 4))):
        ips = st.lists(targets, max_size=3)
        alerts = [
            {
                "detector": draw(st.sampled_from(["c2.beaconing", "intel.match", "x"])),
                "techniques": [],
                "severity": draw(st.sampled_from(["low", "critical"])),
                "confidence": draw(st.floats(0, 1)),
                "src": draw(st.none() | targets),
                "dst": draw(st.none() | targets),
            }
            for _ in range(draw(st.integers(0, 3)))
        ]
        conf = draw(confidences)
        incidents.append(
            {
                "id": f"INC-{n}",
                "title": "random",
                "severity": draw(st.sampled_from(["low", "medium", "high", "critical"])),
                "confidence": conf if 0 <= conf <= 1 else 0.5,
                "techniques": [],
                "entities": {
                    "attackers": draw(ips),
                    "victims": draw(ips),
                    "domains": draw(st.lists(targets, max_size=3)),
                },
                "alerts": alerts,
            }
        )
    return {"incidents": incidents}


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=policies(), batches=st.lists(reports(), min_size=1, max_size=3), approve=st.booleans()
)
def test_no_sequence_of_reports_and_approvals_enforces_a_forbidden_decision(
    policy: Policy, batches: list[dict], approve: bool
) -> None:
    """Random reports through the real ledger, a person approving everything pending: whatever
    ends up enforced touches no protected asset, is no wider than allowed and expires."""
    protected = assets(dict(policy.raw))
    store = _property_store()
    ledger = Ledger(store, policy, EVERYTHING)
    now = T0
    for report in batches:
        json.dumps(report)  # a report is plain JSON
        ledger.plan(report, now=now)
        if approve:
            for e in ledger.list(State.pending):
                try:
                    ledger.approve(e.id, by="anyone", now=now)
                except LedgerError:
                    assert ledger.get(e.id).state is State.pending
        now += timedelta(seconds=20)
    for d in ledger.active(now):
        assert not enforceable_problems(d, policy, protected), d
        assert d.expires > now and d.ttl <= policy.max_ttl[d.action]
    denied = {e.id for e in ledger.list(State.denied)}
    assert not denied & {d.id for d in ledger.active(now)}
    assert ledger.verify_audit().ok


_STORE: list[Store] = []


def _property_store() -> Store:
    """One SQLite file for all examples (creating a store per example is most of their time),
    emptied before each."""
    if not _STORE:
        _STORE.append(Store(f"sqlite:///{tempfile.mkdtemp(prefix='mamori-roe-')}/state.db"))
    store = _STORE[0]
    with store.begin() as conn:
        for table in (audit, audit_head, decisions):
            conn.execute(sa.delete(table))
    return store
