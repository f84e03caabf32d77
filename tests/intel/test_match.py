"""Matching: exact IPs, longest CIDR prefix, domains and parents, URLs, JA3, port constraints;
the CIDR and domain indexes against brute-force references on random inputs."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.intel.match import CidrIndex, DomainIndex, match
from support.intel_frames import indicators as _indicators
from support.intel_frames import lake_frames as _frames

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _rec(uid: str, orig: str, resp: str, port: int = 443, **extra: object) -> dict:
    return {
        "ts": T0,
        "uid": uid,
        "orig_h": orig,
        "resp_h": resp,
        "orig_p": 5000,
        "resp_p": port,
        **extra,
    }


def test_ip_cidr_longest_prefix_and_port() -> None:
    ind = _indicators([
        ("ip", "203.0.113.9", None), ("cidr", "10.0.0.0/8", None), ("cidr", "10.1.0.0/16", None),
        ("cidr", "10.1.2.0/24", None), ("ip", "198.51.100.7", 443), ("cidr", "2001:db8::/32", None),
        ("cidr", "2001:db8:5::/48", None),
    ])  # fmt: skip
    frames = _frames(conn=[
        _rec("C1", "192.168.1.2", "203.0.113.9"), _rec("C2", "192.168.1.2", "10.1.2.3"),
        _rec("C3", "192.168.1.2", "10.1.9.9"), _rec("C4", "192.168.1.2", "10.200.0.1"),
        _rec("C5", "192.168.1.2", "198.51.100.7", 443), _rec("C6", "192.168.1.2", "198.51.100.7", 80),
        _rec("C7", "2001:db8:5::1", "fd00::1"), _rec("C8", "2001:db8:6::1", "fd00::1"),
    ])  # fmt: skip
    hits = match(ind, frames)
    got = dict(zip(hits["uid"], hits["indicator"], strict=True))
    assert got == {
        "C1": "i0",
        "C2": "i3",
        "C3": "i2",
        "C4": "i1",
        "C5": "i4",
        "C7": "i6",
        "C8": "i5",
    }


def test_domains_with_parents_urls_ja3_and_dns_answers() -> None:
    ja3 = "e7d705a3286e19ea42f587b344ee6865"
    ind = _indicators([
        ("domain", "evil.example", None), ("domain", "a.evil.example", None),
        ("url", "bad.example/dl/x.exe", None), ("url", "bad.example/q?id=7", None),
        ("ja3", ja3, None), ("ip", "192.0.2.66", None),
    ])  # fmt: skip
    frames = _frames(
        dns=[_rec("D1", "10.0.0.5", "10.0.0.1", 53, query="x.A.Evil.example", answers=["192.0.2.66", "cname.example"]),
             _rec("D2", "10.0.0.5", "10.0.0.1", 53, query="notevil.example", answers=[])],
        http=[_rec("H1", "10.0.0.6", "192.0.2.1", 80, host="BAD.example", uri="/dl/x.exe?session=1"),
              _rec("H2", "10.0.0.6", "192.0.2.1", 80, host="bad.example", uri="/q?id=7"),
              _rec("H3", "10.0.0.6", "192.0.2.1", 80, host="bad.example", uri="/q?id=8")],
        ssl=[_rec("S1", "10.0.0.7", "192.0.2.2", server_name="www.evil.example", ja3=ja3.upper())],
    )  # fmt: skip
    hits = match(ind, frames)
    pairs = set(zip(hits["uid"], hits["indicator"], hits["where"], strict=True))
    assert pairs == {
        ("D1", "i0", "dns.query"), ("D1", "i1", "dns.query"), ("D1", "i5", "dns.answers"),
        ("H1", "i2", "http.url"), ("H2", "i3", "http.url"),
        ("S1", "i0", "ssl.server_name"), ("S1", "i4", "ssl.ja3"),
    }  # fmt: skip


def test_empty_indicators_match_nothing() -> None:
    assert match(_indicators([]), _frames(conn=[_rec("C1", "1.2.3.4", "5.6.7.8")])).height == 0


# ---- properties against brute force ---------------------------------------------------------

prefix_v4 = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32))
addr_v4 = st.integers(0, 2**32 - 1)


def _brute(nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network], addr: str) -> str | None:
    ip = ipaddress.ip_address(addr)
    cover = [n for n in nets if ip.version == n.version and ip in n]
    return str(max(cover, key=lambda n: n.prefixlen)) if cover else None


@settings(max_examples=200, deadline=None)
@given(st.lists(prefix_v4, min_size=1, max_size=40), st.lists(addr_v4, min_size=1, max_size=60))
def test_cidr_v4_matches_brute_force(prefixes: list[tuple[int, int]], addrs: list[int]) -> None:
    nets = [ipaddress.ip_network((a, p), strict=False) for a, p in prefixes]
    # addresses near the range edges are where an off-by-one would show
    edges = [int(n.network_address) for n in nets] + [int(n.broadcast_address) for n in nets]
    probes = addrs + edges + [min(e + 1, 2**32 - 1) for e in edges] + [max(e - 1, 0) for e in edges]
    texts = [str(ipaddress.IPv4Address(a)) for a in probes]
    index = CidrIndex.build(pl.Series([str(n) for n in nets]))
    labels = index.lookup(pl.Series(texts))
    got = [index.networks[int(x)] if x >= 0 else None for x in labels]
    assert got == [_brute(nets, t) for t in texts]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128)), min_size=1, max_size=30),
    st.lists(st.integers(0, 2**128 - 1), min_size=1, max_size=40),
)
def test_cidr_v6_matches_brute_force(prefixes: list[tuple[int, int]], addrs: list[int]) -> None:
    nets = [ipaddress.ip_network((a, p), strict=False) for a, p in prefixes]
    # keep probes inside the ranges too: random 128-bit addresses rarely fall in a long prefix
    probes = (
        addrs + [int(n.network_address) for n in nets] + [int(n.broadcast_address) for n in nets]
    )
    texts = [str(ipaddress.IPv6Address(a)) for a in probes]
    index = CidrIndex.build(pl.Series([str(n) for n in nets]))
    labels = index.lookup(pl.Series(texts))
    got = [index.networks[int(x)] if x >= 0 else None for x in labels]
    assert got == [_brute(nets, t) for t in texts]


label = st.text("abcxyz0", min_size=1, max_size=3)
domain = st.lists(label, min_size=1, max_size=4).map(".".join)  # the index itself takes any name


@settings(max_examples=200, deadline=None)
@given(st.lists(domain, min_size=1, max_size=20), st.lists(domain, min_size=1, max_size=40))
def test_domain_parents_match_brute_force(listed: list[str], names: list[str]) -> None:
    index = DomainIndex.build(pl.Series(listed))
    rec, lab = index.lookup(pl.Series(names))
    got = {(int(r), index.domains[int(v)]) for r, v in zip(rec, lab, strict=True)}
    want = {
        (i, d) for i, n in enumerate(names) for d in set(listed)
        if n == d or n.endswith("." + d)
    }  # fmt: skip
    assert got == want
    assert np.all(np.diff(rec) >= 0)


def test_indexes_are_reused_only_for_the_same_indicators() -> None:
    """A second match of the same indicators reuses the built indexes; indicators of the same
    size that differ in one value, or in order, are indexed anew, so their hits are their own."""
    from mamori.intel import match as m

    m.clear_cache()
    conn = [_rec("C1", "192.168.1.2", "203.0.113.9"), _rec("C2", "10.1.2.3", "198.51.100.7")]
    a = _indicators([("ip", "203.0.113.9", None), ("cidr", "10.0.0.0/8", None)])
    b = _indicators([("ip", "198.51.100.7", None), ("cidr", "10.0.0.0/8", None)])
    first = match(a, _frames(conn=conn))
    built = m._cache[0][2]
    again = match(a.clone(), _frames(conn=conn))
    assert m._cache[0][2] is built
    assert again.equals(first)
    other = match(b, _frames(conn=conn))
    assert m._cache[0][2] is not built
    assert sorted(other["seen"].to_list()) == ["10.1.2.3", "198.51.100.7"]
    assert sorted(first["seen"].to_list()) == ["10.1.2.3", "203.0.113.9"]
    flipped = match(a.reverse(), _frames(conn=conn))  # rows of the indicators in another order
    assert sorted(zip(flipped["seen"], flipped["indicator"], strict=True)) == sorted(
        zip(first["seen"], first["indicator"], strict=True)
    )
    m.clear_cache()
    assert not m._cache


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=6),
    st.data(),
)
def test_hit_rows_gathered_across_chunks_are_the_plain_gather(
    sizes: list[int], data: st.DataObject
) -> None:
    """Hit rows are read a chunk at a time (a lake table has one chunk per row group); what comes
    out is exactly ``gather``, for chunks that line up across columns and for ones that do not."""
    from mamori.intel.match import _take_columns

    parts = [
        pl.DataFrame(
            {"uid": [f"C{k}-{i}" for i in range(n)], "ts": list(range(n))},
            schema={"uid": pl.String, "ts": pl.Int64},
        )
        for k, n in enumerate(sizes)
    ]
    table = pl.concat(parts, rechunk=False)
    total = table.height
    rows = np.array(
        sorted(data.draw(st.lists(st.integers(0, max(total - 1, 0)), max_size=30)))
        if total
        else [],
        dtype=np.int64,
    )
    want = table[rows.tolist()] if len(rows) else table.clear()
    uid, ts = _take_columns(table, ["uid", "ts"], rows)
    assert uid.to_list() == want["uid"].to_list() and ts.to_list() == want["ts"].to_list()
    # columns chunked differently: the per-column path gives the same rows
    skewed = table.with_columns(pl.Series("ts", table["ts"].to_list(), pl.Int64))
    uid, ts = _take_columns(skewed, ["uid", "ts"], rows)
    assert uid.to_list() == want["uid"].to_list() and ts.to_list() == want["ts"].to_list()
