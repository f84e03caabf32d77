"""The disjoint layout of overlapping blocks: every address expires with its latest decision."""

from __future__ import annotations

import ipaddress
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.respond.decision import Action, Decision
from mamori.respond.points.targets import (
    PointError,
    cidr_text,
    domain,
    network,
    parse_cidr,
    partition,
    write_atomic,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)

nets = st.builds(
    lambda addr, plen: ipaddress.ip_network(f"{ipaddress.IPv4Address(addr)}/{plen}", strict=False),
    st.integers(0, 1023).map(lambda a: 0x0A000000 + a * 4),  # 10.0.0.0/20: overlaps are common
    st.integers(22, 32),
)
items = st.lists(st.tuples(nets, st.integers(1, 10_000), st.sampled_from("abcdef")), max_size=12)


@given(items, st.lists(st.integers(0, 2**10 - 1), min_size=1, max_size=40))
def test_partition_is_disjoint_and_expires_each_address_with_its_latest_cover(raw, probes) -> None:
    entries = [(n, T0 + timedelta(seconds=s), o) for n, s, o in raw]
    pieces = partition(entries)
    nets = [ipaddress.ip_network(p.net) for p in pieces]
    for a, b in itertools.pairwise(sorted(nets)):
        assert not a.overlaps(b), (a, b)
    # probe addresses inside the entries' networks and a few beside them
    candidates = [n.network_address + (p % n.num_addresses) for n, _, _ in entries for p in probes]
    candidates += [ipaddress.IPv4Address(0x0B000000 + p) for p in probes]
    for addr in candidates:
        covers = [e for n, e, _ in entries if addr in n]
        hit = [p for p, n in zip(pieces, nets, strict=True) if addr in n]
        if not covers:
            assert hit == []
        else:
            assert len(hit) == 1
            assert hit[0].expires == max(covers)


def test_nested_prefix_outliving_its_parent_keeps_its_own_piece() -> None:
    wide = ipaddress.ip_network("10.0.0.0/24")
    host = ipaddress.ip_network("10.0.0.5/32")
    pieces = partition([(wide, T0, "wide"), (host, T0 + timedelta(hours=1), "host")])
    owners = {str(p.net): p.owner for p in pieces}
    assert owners["10.0.0.5/32"] == "host"
    assert sum(ipaddress.ip_network(p.net).num_addresses for p in pieces) == 256


def _d(target: str, action: Action = Action.block_ip) -> Decision:
    return Decision(action, target, "test", "inc-1", 0.9, 60)


def test_targets_are_read_strictly() -> None:
    assert str(network(_d("192.0.2.7"))) == "192.0.2.7/32"
    assert str(network(_d("2001:db8::/48"))) == "2001:db8::/48"
    assert domain(_d("Evil.Example.")) == "evil.example"
    with pytest.raises(PointError, match="not an IP address"):
        network(_d("evil.example"))
    with pytest.raises(PointError, match="not a domain"):
        domain(_d("bad name.example", Action.block_domain))
    with pytest.raises(PointError, match="not a domain"):
        domain(_d("-x.example", Action.block_domain))
    with pytest.raises(PointError, match="is an IP address"):
        domain(_d("172.18.0.2", Action.sinkhole))


def test_write_atomic_replaces_whole_file(tmp_path) -> None:
    path = tmp_path / "sub" / "list.txt"
    write_atomic(path, "a\n")
    write_atomic(path, "b\nc\n")
    assert path.read_text() == "b\nc\n"
    assert [p.name for p in path.parent.iterdir()] == ["list.txt"]


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.integers(0, 128))
def test_parse_cidr_agrees_with_ipaddress(addr, plen) -> None:
    plen = min(plen, addr.max_prefixlen)
    target = f"{addr}/{plen}"
    version, lo, length = parse_cidr(_d(target))
    net = ipaddress.ip_network(target, strict=False)
    assert (version, lo, length) == (net.version, int(net.network_address), net.prefixlen)
    assert cidr_text(version, lo, length) == str(net)


def test_parse_cidr_refuses_what_is_not_a_prefix() -> None:
    for bad in ("192.0.2.1/33", "192.0.2.1/", "192.0.2.1/x", "evil.example", "2001:db8::/129"):
        with pytest.raises(PointError, match="not an IP address"):
            parse_cidr(_d(bad))
