"""Plain lists: exactly the enforced targets, one per line, whole files only."""

from __future__ import annotations

import ipaddress
import itertools
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.respond.decision import Action, Decision, enforcement_points
from mamori.respond.points.blocklist import DomainBlocklist, IpBlocklist
from mamori.respond.points.targets import PointError


def _d(target: str, action: Action = Action.block_ip, ttl: int = 600, inc: str = "i") -> Decision:
    return Decision(action, target, "test", inc, 0.9, ttl)


def test_registered() -> None:
    points = enforcement_points()
    assert points["blocklist-ip"] is IpBlocklist and points["blocklist-domain"] is DomainBlocklist


def test_lists_hold_only_their_actions() -> None:
    now = datetime.now(UTC)
    ds = [_d("192.0.2.7"), _d("2001:db8::/48"), _d("Evil.Example", Action.block_domain),
          _d("c2.example", Action.sinkhole), _d("198.51.100.1", Action.rate_limit)]  # fmt: skip
    assert IpBlocklist().render(ds, now) == "192.0.2.7\n2001:db8::/48\n"
    assert DomainBlocklist().render(ds, now) == "c2.example\nevil.example\n"


def test_apply_from_separate_processes_keeps_and_expires_entries(tmp_path: Path) -> None:
    path = tmp_path / "ip.txt"
    keep, short, gone = _d("192.0.2.7"), _d("192.0.2.8", ttl=1), _d("192.0.2.0/30", inc="g")
    IpBlocklist(path).apply([keep, short, gone], [])
    assert path.read_text() == "192.0.2.0/30\n192.0.2.7\n192.0.2.8\n"
    IpBlocklist(path).apply([], [gone])
    assert path.read_text() == "192.0.2.7\n192.0.2.8\n"
    time.sleep(1.2)
    IpBlocklist(path).apply([], [])
    assert path.read_text() == "192.0.2.7\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ip.txt", "ip.txt.state.json"]


def test_corrupt_state_is_named(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    (tmp_path / "d.txt.state.json").write_text("{not json")
    with pytest.raises(PointError, match=r"d\.txt\.state\.json"):
        DomainBlocklist(path).apply([_d("a.example", Action.block_domain)], [])
    with pytest.raises(PointError, match="path"):
        DomainBlocklist().apply([], [])


addrs = st.integers(0, 2**16 - 1).map(lambda a: ipaddress.IPv4Address(0xC6120000 + a))
blocks = st.lists(st.tuples(addrs, st.integers(16, 32)), max_size=15)


@given(blocks, st.lists(addrs, max_size=30))
def test_ip_list_blocks_exactly_the_union(items, probes) -> None:
    ds = [_d(str(ipaddress.ip_network(f"{a}/{p}", strict=False)), inc=str(k))
          for k, (a, p) in enumerate(items)]  # fmt: skip
    lines = IpBlocklist().render(ds, datetime.now(UTC)).splitlines()
    listed = [ipaddress.ip_network(x) for x in lines]
    assert len(lines) == len(set(lines))
    for a, b in itertools.pairwise(listed):
        assert not a.overlaps(b)
    for probe in probes + [ipaddress.ip_network(d.target).network_address for d in ds]:
        wanted = any(probe in ipaddress.ip_network(d.target) for d in ds)
        assert any(probe in n for n in listed) == wanted
