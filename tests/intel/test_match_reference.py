"""The compiled matchers against a plain Python reference (``ipaddress`` and a parent-domain loop)
on random indicators and records, edge cases drawn on purpose: nested and overlapping CIDRs,
/0 and /32 (/128), IPv6 beside IPv4 in one index, IPv4-mapped IPv6, spellings ``ipaddress``
refuses (leading zeros, junk), trailing root dots, empty labels and mixed case. ``match()`` codes
each column by distinct value first: that coding is checked against a dict, and ``match()`` on
records that repeat their values (as a lake does) against the reference record by record."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mamori.intel.match as match_module
from mamori.intel.match import CidrIndex, DomainIndex, distinct_codes, match
from support.intel_frames import indicators as _indicators
from support.intel_frames import lake_frames as _frames

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _rec(uid: str, orig: str, resp: str, port: int = 443, **extra: object) -> dict:
    return {"ts": T0, "uid": uid, "orig_h": orig, "resp_h": resp, "orig_p": 5000, "resp_p": port,
            **extra}  # fmt: skip


# ---- addresses and ranges --------------------------------------------------------------------

v4_int = st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, 1, 2**32 - 1, 2**31, 0x0A000000, 0xC0A80101]),
)
v6_int = st.one_of(
    st.integers(0, 2**128 - 1),
    st.integers(0, 2**32 - 1).map(lambda v: 0xFFFF_0000_0000 | v),  # IPv4-mapped
    st.sampled_from([0, 1, 2**128 - 1, 0x2001_0DB8 << 96]),
)


def _v4_net(a: int, plen: int) -> str:
    return str(ipaddress.IPv4Network((a, plen), strict=False))


def _v6_net(a: int, plen: int) -> str:
    return str(ipaddress.IPv6Network((a, plen), strict=False))


networks = st.one_of(
    st.builds(_v4_net, v4_int, st.one_of(st.integers(0, 32), st.sampled_from([0, 8, 24, 32]))),
    st.builds(_v6_net, v6_int, st.one_of(st.integers(0, 128), st.sampled_from([0, 96, 128]))),
)


@st.composite
def address_text(draw: st.DrawFn, near: list[str]) -> str:
    """An address as a record might spell it, often at or next to a listed range's edge."""
    kind = draw(st.integers(0, 9))
    if kind <= 3 and near:
        net = ipaddress.ip_network(draw(st.sampled_from(near)))
        edge = draw(st.sampled_from([net.network_address, net.broadcast_address]))
        top = 2**32 - 1 if net.version == 4 else 2**128 - 1
        value = min(max(int(edge) + draw(st.integers(-1, 1)), 0), top)
        addr = ipaddress.ip_address(value) if net.version == 4 else ipaddress.IPv6Address(value)
        return str(addr)
    if kind <= 5:
        return str(ipaddress.IPv4Address(draw(v4_int)))
    if kind == 6:
        ip6 = ipaddress.IPv6Address(draw(v6_int))
        return draw(st.sampled_from([str(ip6), ip6.exploded.upper()]))
    if kind == 7:  # IPv4-mapped, written with a dotted tail
        return f"::ffff:{ipaddress.IPv4Address(draw(v4_int))}"
    return draw(
        st.sampled_from(
            ["010.0.0.1", "1.2.3", "256.1.1.1", "", "x", "1.2.3.4 ", "1.2.3.4/32", "::g", "1..2.3"]
        )
    )


def _reference_cidr(nets: list[str], text: str) -> str | None:
    """Longest listed range holding the address, by the standard library."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    best: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    for n in map(ipaddress.ip_network, nets):
        if n.version == ip.version and ip in n and (best is None or n.prefixlen > best.prefixlen):
            best = n
    return str(best) if best is not None else None


@settings(max_examples=100, deadline=None)
@given(st.data(), st.lists(networks, min_size=1, max_size=30, unique=True))
def test_cidr_index_equals_ipaddress(data: st.DataObject, nets: list[str]) -> None:
    texts = data.draw(st.lists(address_text(nets), min_size=1, max_size=60))
    index = CidrIndex.build(pl.Series(nets, dtype=pl.String))
    labels = index.lookup(pl.Series(texts, dtype=pl.String))
    got = [index.networks[int(x)] if x >= 0 else None for x in labels]
    assert got == [_reference_cidr(nets, t) for t in texts]


@pytest.mark.parametrize("min_bits", [10, 24])
def test_cidr_index_large_table_equals_ipaddress(
    min_bits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of ranges, many bounds in one block; the block table as small as the index
    allows, and at its full 2^24 blocks of /24 (as a million indicators get)."""
    monkeypatch.setattr(match_module, "_MIN_BITS", min_bits)
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**32, 3000, dtype=np.uint64)
    plen = rng.integers(8, 33, 3000)
    nets = sorted({_v4_net(int(a), int(p)) for a, p in zip(base, plen, strict=True)})
    nets += [_v4_net(0x0A000000 + i * 4, 30) for i in range(300)] + ["0.0.0.0/0"]
    index = CidrIndex.build(pl.Series(nets))
    assert index.v4_shift == 32 - max(min_bits, 16)
    probes = [int(a) for a in rng.integers(0, 2**32, 4000, dtype=np.uint64)]
    for n in map(ipaddress.ip_network, nets[::7]):
        probes += [int(n.network_address), int(n.broadcast_address)]
    probes += [0x0A000000 + i for i in range(0, 1300, 3)]
    texts = [str(ipaddress.IPv4Address(min(max(p, 0), 2**32 - 1))) for p in probes]
    labels = index.lookup(pl.Series(texts))
    got = [index.networks[int(x)] if x >= 0 else None for x in labels]
    # the reference by prefix-length dictionaries (a scan of 3,000 ranges per probe is too slow)
    by_len: dict[int, dict[int, str]] = {}
    for n in map(ipaddress.ip_network, nets):
        by_len.setdefault(n.prefixlen, {})[int(n.network_address)] = str(n)
    want = []
    for t in texts:
        v = int(ipaddress.IPv4Address(t))
        hit = None
        for p in sorted(by_len, reverse=True):
            hit = by_len[p].get((v >> (32 - p)) << (32 - p) if p else 0)
            if hit:
                break
        want.append(hit)
    assert got == want


# ---- domains ---------------------------------------------------------------------------------

label = st.text("abcXYZ0-", min_size=0, max_size=3)
name = st.lists(label, min_size=1, max_size=4).map(".".join)


@st.composite
def query(draw: st.DrawFn, listed: list[str]) -> str:
    """A name as a record might hold it: often a listed domain or below one, any case, maybe with
    the root dot."""
    if listed and draw(st.booleans()):
        below = draw(st.lists(label, max_size=2))
        base = ".".join([*below, draw(st.sampled_from(listed))])
    else:
        base = draw(name)
    base = "".join(c.upper() if draw(st.booleans()) else c for c in base)
    return base + draw(st.sampled_from(["", "", ".", ".."]))


def _reference_domains(listed: list[str], q: str) -> set[str]:
    """The listed domains a name is, or is below: a loop over the name's parents."""
    wanted = {d.lower().rstrip(".") for d in listed} - {""}
    q = q[:-1] if q.endswith(".") else q  # one root dot
    labels = q.lower().split(".")
    return {p for i in range(len(labels)) if (p := ".".join(labels[i:])) in wanted}


@settings(max_examples=100, deadline=None)
@given(st.data(), st.lists(name.map(lambda s: s + "."), max_size=3), st.lists(name, max_size=25))
def test_domain_index_equals_parent_loop(
    data: st.DataObject, rooted: list[str], plain: list[str]
) -> None:
    listed = rooted + plain
    listed = listed + [d.upper() for d in data.draw(st.lists(st.sampled_from(listed or ["a"])))]
    names = data.draw(st.lists(query(listed), min_size=1, max_size=50))
    index = DomainIndex.build(pl.Series(listed, dtype=pl.String))
    rec, lab = index.lookup(pl.Series(names, dtype=pl.String))
    got: list[set[str]] = [set() for _ in names]
    for r, v in zip(rec, lab, strict=True):
        got[int(r)].add(index.domains[int(v)])
    assert got == [_reference_domains(listed, q) for q in names]


# ---- the whole matcher -----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.data(), st.lists(networks, min_size=1, max_size=12, unique=True))
def test_match_equals_reference(data: st.DataObject, nets: list[str]) -> None:
    """IP, CIDR and domain indicators through ``match``: every (record, indicator, where) hit and
    no other, as the reference finds them."""
    listed = data.draw(st.lists(name, min_size=1, max_size=6))
    exact = data.draw(st.lists(address_text(nets), max_size=4, unique=True))
    rows = (
        [("cidr", n, None) for n in nets]
        + [("ip", a, None) for a in exact if a]
        + [("domain", d, None) for d in listed]
    )
    ind = _indicators(rows)
    conn = [
        _rec(f"C{i}", data.draw(address_text(nets)), data.draw(address_text(nets)))
        for i in range(data.draw(st.integers(1, 12)))
    ]
    dns = [
        _rec(f"D{i}", "10.0.0.1", "10.0.0.53", 53, query=data.draw(query(listed)), answers=[])
        for i in range(data.draw(st.integers(0, 8)))
    ]
    hits = match(ind, _frames(conn=conn, dns=dns))
    got = set(zip(hits["uid"], hits["indicator"], hits["where"], strict=True))

    ids = ind["id"].to_list()
    want: set[tuple[str, str, str]] = set()
    for r in conn:
        for col in ("orig_h", "resp_h"):
            seen = r[col]
            if not seen:
                continue  # empty observables are not matched
            best = _reference_cidr(nets, seen)
            for i, (kind, value, _) in zip(ids, rows, strict=True):
                if (kind == "ip" and value == seen) or (kind == "cidr" and value == best):
                    want.add((r["uid"], i, f"conn.{col}"))
    for r in dns:
        found = _reference_domains(listed, r["query"])
        for i, (kind, value, _) in zip(ids, rows, strict=True):
            if kind == "domain" and value.lower().rstrip(".") in found:
                want.add((r["uid"], i, "dns.query"))
    assert got == want


def test_match_with_broad_ranges_equals_reference() -> None:
    """/0 and /1 beside narrow ranges: every record hits once per address (the longest range),
    never once per covering range."""
    nets = ["0.0.0.0/0", "128.0.0.0/1", "10.0.0.0/8", "10.1.0.0/16", "::/0", "2001:db8::/32"]
    ind = _indicators([("cidr", n, None) for n in nets])
    rng = np.random.default_rng(5)
    addrs = [str(ipaddress.IPv4Address(int(a))) for a in rng.integers(0, 2**32, 40)]
    addrs += ["10.1.2.3", "10.9.9.9", "2001:db8::1", "fe80::1", "x"]
    conn = [_rec(f"C{i}", addrs[i % len(addrs)], addrs[(3 * i) % len(addrs)]) for i in range(300)]
    hits = match(ind, _frames(conn=conn))
    got = sorted(zip(hits["uid"], hits["where"], hits["indicator"], strict=True))
    want = sorted(
        (r["uid"], f"conn.{col}", f"i{nets.index(best)}")
        for r in conn
        for col in ("orig_h", "resp_h")
        if (best := _reference_cidr(nets, r[col])) is not None
    )
    assert got == want


# ---- distinct coding -------------------------------------------------------------------------

texts = st.one_of(
    st.none(),
    st.sampled_from(["", "a", "1.2.3.4", "255.255.255.255", "x" * 12, "x" * 13, "y" * 16]),
    st.text(max_size=3),
    st.text("ab.", min_size=11, max_size=18),  # about the 12- and 16-byte edges of the keys
    st.text(min_size=17, max_size=40),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(texts, max_size=80), st.integers(0, 5), st.booleans())
def test_distinct_codes_equal_a_dict(values: list[str | None], skip: int, chunked: bool) -> None:
    """Equal text, equal code; codes dense in order of first sight; null and empty -1; a slice
    or a column of several chunks read in place."""
    series = pl.Series([*([None] * skip), *values], dtype=pl.String).slice(skip)
    if chunked and len(values) > 1:
        half = len(values) // 2
        series = pl.concat([series.slice(0, half), series.slice(half)], rechunk=False)
    codes, first = distinct_codes(series)
    seen: dict[str, int] = {}
    want = [-1 if not v else seen.setdefault(v, len(seen)) for v in values]
    assert codes.tolist() == want
    assert series.gather(first).to_list() == list(seen)


def test_mostly_distinct_columns_are_not_coded() -> None:
    """A column whose sample is mostly distinct gets a code per row (values still right); one of
    repeats is coded."""
    rng = np.random.default_rng(2)
    unique = pl.Series([f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}" for i in range(5000)])
    codes, first = distinct_codes(unique.append(unique.head(10)), sample=64)
    assert len(first) == 5010 and np.array_equal(codes, np.arange(5010))
    repeats = pl.Series([f"h{i}.example" for i in rng.integers(0, 20, 5000)] + [None, ""])
    codes, first = distinct_codes(repeats, sample=64)
    assert len(first) == 20 and codes[-2:].tolist() == [-1, -1]
    assert repeats.gather(first).gather(codes[:-2]).equals(repeats.head(5000))


def test_distinct_codes_exact_fallback_agrees() -> None:
    """The comparing kernel (used after a hash collision) codes as the fast one does."""
    rng = np.random.default_rng(1)
    words = [f"host{i}.example.org" for i in range(500)] + [f"10.0.{i}.1" for i in range(200)]
    series = pl.Series([words[i] for i in rng.integers(0, len(words), 20_000)])
    codes, first = distinct_codes(series)
    views, lens, data, base, _keep = match_module._views(series)
    again = np.empty(len(lens), np.int32)
    first2 = match_module._distinct_exact(views, lens, data, data.view(np.uint64), base, again)
    assert np.array_equal(codes, again) and np.array_equal(first, first2)
    assert len(first) == len(set(series.to_list()))


# ---- repeated values, every source, the cap per value -----------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.data(), st.lists(networks, min_size=1, max_size=8, unique=True))
def test_match_on_repeated_values_equals_reference(data: st.DataObject, nets: list[str]) -> None:
    """Records drawn from a few values each (so most rows share a code), through conn, DNS
    queries and answers, HTTP hosts with ports, and URLs with queries."""
    listed = data.draw(st.lists(name, min_size=1, max_size=5))
    pool_a = data.draw(st.lists(address_text(nets), min_size=1, max_size=6))
    pool_q = data.draw(st.lists(query(listed), min_size=1, max_size=5))
    exact = data.draw(st.lists(st.sampled_from(pool_a), max_size=3, unique=True))
    urls = [f"{q.lower().rstrip('.')}/p" for q in pool_q[:2]]
    rows = (
        [("cidr", n, None) for n in nets]
        + [("ip", a, None) for a in exact if a]
        + [("domain", d, None) for d in listed]
        + [("url", u, None) for u in urls]
    )
    ind = _indicators(rows)
    pick = st.integers(0, 10_000)
    n = data.draw(st.integers(1, 40))
    conn = [
        _rec(f"C{i}", pool_a[data.draw(pick) % len(pool_a)], pool_a[data.draw(pick) % len(pool_a)])
        for i in range(n)
    ]
    dns = [
        _rec(f"D{i}", "10.0.0.1", "10.0.0.53", 53, query=pool_q[i % len(pool_q)],
             answers=[pool_a[(i + k) % len(pool_a)] for k in range(i % 3)])
        for i in range(n)
    ]  # fmt: skip
    http = [
        _rec(f"H{i}", "10.0.0.2", "192.0.2.1", 80,
             host=pool_q[i % len(pool_q)] + (":8080" if i % 2 else ""),
             uri="/p" + ("?q=1" if i % 3 else ""))
        for i in range(n)
    ]  # fmt: skip
    hits = match(ind, _frames(conn=conn, dns=dns, http=http))
    got = set(zip(hits["uid"], hits["indicator"], hits["where"], hits["seen"], strict=True))

    ids = ind["id"].to_list()

    def addr_hits(uid: str, where: str, seen: str) -> set[tuple[str, str, str, str]]:
        if not seen:
            return set()
        best = _reference_cidr(nets, seen)
        return {
            (uid, i, where, seen)
            for i, (kind, value, _) in zip(ids, rows, strict=True)
            if (kind == "ip" and value == seen) or (kind == "cidr" and value == best)
        }

    def name_hits(uid: str, where: str, seen: str, q: str) -> set[tuple[str, str, str, str]]:
        found = _reference_domains(listed, q)
        return {
            (uid, i, where, seen)
            for i, (kind, value, _) in zip(ids, rows, strict=True)
            if kind == "domain" and value.lower().rstrip(".") in found
        }

    want: set[tuple[str, str, str, str]] = set()
    for r in conn:
        want |= addr_hits(r["uid"], "conn.orig_h", r["orig_h"])
        want |= addr_hits(r["uid"], "conn.resp_h", r["resp_h"])
    for r in dns:
        want |= name_hits(r["uid"], "dns.query", r["query"], r["query"])
        for a in r["answers"]:
            if a and all(c in "0123456789abcdefABCDEF.:" for c in a):
                want |= addr_hits(r["uid"], "dns.answers", a)
    for r in http:
        host = r["host"].lower().rstrip(".")
        bare = host.removesuffix(":8080")
        want |= name_hits(r["uid"], "http.host", bare, bare)
        for url in {host + r["uri"], host + r["uri"].split("?")[0]}:
            want |= {
                (r["uid"], i, "http.url", url)
                for i, (kind, value, _) in zip(ids, rows, strict=True)
                if kind == "url" and value == url
            }
    assert got == want


def test_indicators_per_value_are_capped_most_specific_first() -> None:
    """A value listed by many feeds, a name under many listed parents: at most ``per_value``
    rows per record and observable, the longest parent and the most confident first."""
    ind = _indicators(
        [("ip", "203.0.113.9", None)] * 30
        + [("domain", d, None) for d in ("e.x", "d.e.x", "c.d.e.x", "b.c.d.e.x")]
    ).with_columns(confidence=pl.Series([*range(30), 50, 50, 50, 50], dtype=pl.UInt8))
    frames = _frames(
        conn=[_rec(f"C{i}", "10.0.0.1", "203.0.113.9") for i in range(50)],
        dns=[_rec("D1", "10.0.0.1", "10.0.0.53", 53, query="a.b.c.d.e.x", answers=[])],
    )
    hits = match(ind, frames, per_value=3)
    conn = hits.filter(pl.col("table") == "conn")
    assert conn.height == 50 * 3
    assert set(conn["indicator"]) == {"i29", "i28", "i27"}  # the most confident
    assert sorted(hits.filter(pl.col("table") == "dns")["indicator"]) == ["i31", "i32", "i33"]
    assert match(ind, frames, per_value=100).height == 50 * 30 + 4
