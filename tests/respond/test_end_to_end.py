"""Issue 4's proof: real incidents from shared captures go plan -> guard -> approve -> nftables (in
a network namespace) and RPZ (in unbound) -> expiry -> removed, with every step in the audit log.

The namespaces use the capture's own addresses: the firewall namespace is the SSH victim and the
peer is the guesser, so the block is shown dropping the very host the capture caught.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mamori.respond.decision import Action, State, Verdict
from mamori.respond.ledger import Ledger
from mamori.respond.points.nftables import NftablesPoint
from mamori.respond.points.rpz import RpzPoint
from mamori.respond.points.sync import enforce
from mamori.respond.policy import Policy
from mamori.store import Store
from respond.conftest import _patrol
from support.netns import veth_pair
from support.unbound import unbound

DNS_C2 = "evtx-attack-samples/Command and Control/cmds over dns txt queries and reponses.pcap"
SINK = "192.0.2.53"  # the user's sinkhole
REAL_C2 = "198.51.100.99"  # what the "internet" answers for the tunnel's domain in this test


@pytest.fixture(scope="module")
def dns_report(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _patrol(data_dir, DNS_C2, tmp_path_factory.mktemp("patrol-dnsc2"))


@pytest.fixture
def ledger(tmp_path: Path, policy: Policy) -> Iterator[Ledger]:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    yield Ledger(store, policy)
    store.close()


def _in_order(events: list[str]) -> None:
    """Each step of the decision's life is in the audit log, in the order it happened."""
    steps = ["proposed", "judged", "approved", "applied", "expired", "applied"]
    at = [events.index(s, events.index(p) + 1 if i else 0) for i, (s, p) in
          enumerate(zip(steps, ["", *steps], strict=False))]  # fmt: skip
    assert at == sorted(at), events


def test_ssh_guesser_is_dropped_by_nftables_until_expiry(
    ledger: Ledger, sshguess_report: Path
) -> None:
    report = json.loads(sshguess_report.read_text())
    [incident] = [i for i in report["incidents"] if "T1110.001" in i["techniques"]]
    attacker, victim = incident["entities"]["attackers"][0], incident["entities"]["victims"][0]

    entries = ledger.plan(sshguess_report)
    [block] = [e for e in entries if e.decision.action is Action.block_ip]
    assert block.decision.target == attacker and block.verdict is Verdict.allow
    assert block.state is State.approved and block.expires is not None

    with veth_pair("e", fw4=victim, peer4=attacker) as pair:
        point = NftablesPoint(namespace=pair.fw)
        point.load([])
        assert pair.connects(victim)  # before: the guesser reaches the victim
        [change] = enforce(ledger, [point])  # what `mamori respond` runs after each change
        assert [d.id for d in change.added] == [block.id]
        assert not pair.connects(victim)  # enforced: dropped
        assert pair.connects(pair.fw6)  # and nothing else is

        [again] = enforce(ledger, [NftablesPoint(namespace=pair.fw)])  # a later process
        assert again.added == again.removed == ()
        [change] = enforce(ledger, [point], now=block.expires + timedelta(seconds=1))
        assert [d.id for d in change.removed] == [block.id]
        assert pair.connects(victim)  # expired: allowed again
        assert ledger.active(now=block.expires + timedelta(seconds=1)) == []

    _in_order([e.event for e in ledger.audit_entries(block.id)])
    assert ledger.verify_audit().ok


def test_dns_tunnel_domain_is_sinkholed_by_unbound_after_approval(
    ledger: Ledger, dns_report: dict[str, Any], tmp_path: Path
) -> None:
    [incident] = [i for i in dns_report["incidents"] if "T1071.004" in i["techniques"]]
    # The tunnel's zone is an entity of the incident, so the shipped dns_c2 profile proposes
    # the sinkhole itself.
    [domain] = incident["entities"]["domains"]
    [entry] = [
        e for e in ledger.plan(dns_report)
        if e.decision.action is Action.sinkhole and e.decision.incident == incident["id"]
    ]  # fmt: skip
    assert entry.decision.target == domain
    assert entry.verdict is Verdict.needs_approval and entry.state is State.pending
    assert ledger.active() == []

    upstream = f"$ORIGIN {domain}.\n$TTL 60\n@ IN SOA localhost. h.localhost. 1 300 60 86400 60\n"
    upstream += f"@ IN NS localhost.\n@ IN A {REAL_C2}\n* IN A {REAL_C2}\n"
    empty = RpzPoint().render([], datetime.now(UTC))
    with unbound(tmp_path / "unbound", empty, upstream={f"{domain}.": upstream}) as server:
        point = RpzPoint(path=server.zonefile, sinkhole4=SINK, reload=server.reload_command())
        child = f"x1f3a.{domain}"
        assert server.query(domain).addresses == [REAL_C2]  # pending: nothing enforced yet
        assert enforce(ledger, [point])[0].added == ()
        assert server.query(domain).addresses == [REAL_C2]

        approved = ledger.approve(entry.id, by="analyst")
        assert approved.state is State.approved
        enforce(ledger, [point])
        assert server.query(domain).addresses == [SINK]
        assert server.query(child).addresses == [SINK]  # the tunnel's rotating names too

        assert approved.expires is not None
        [change] = enforce(ledger, [point], now=approved.expires + timedelta(seconds=1))
        assert [d.id for d in change.removed] == [entry.id]
        assert server.query(child).addresses == [REAL_C2]

    _in_order([e.event for e in ledger.audit_entries(entry.id)])
    assert ledger.verify_audit().ok
