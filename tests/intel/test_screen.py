"""The screens never stop a row that the exact path would match, and do stop rows that cannot.

Each screen is checked against what ``match()``'s exact path finds for the same rows (the CIDR and
domain indexes, the exact joins, with ``match()``'s own spelling of hosts and URLs), on columns
split into several Arrow chunks (as a lake read from many files is), with nulls, empty strings,
strings on both sides of the 12 bytes a view holds inline, and the spellings a screen must not
misread: leading zeros, octets over 255, hosts with ports and trailing dots, bytes outside ASCII,
URLs with queries and line feeds."""

from __future__ import annotations

import ipaddress
import itertools

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.intel.match import CidrIndex, DomainIndex
from mamori.intel.screen import AddressScreen, ExactAddressScreen, NameScreen, UrlScreen


def _chunked(values: list[str | None], cuts: list[int]) -> pl.Series:
    """A string column of several chunks, cut at ``cuts``."""
    bounds = sorted({0, len(values), *(c % (len(values) + 1) for c in cuts)})
    parts = [pl.Series(values[a:b], dtype=pl.String) for a, b in itertools.pairwise(bounds)]
    if not parts:
        return pl.Series([], dtype=pl.String)
    out = pl.concat(parts, rechunk=False)
    assert out.len() == len(values)
    return out


# ---- addresses -------------------------------------------------------------------------------

v4 = st.integers(0, 2**32 - 1)
v4_net = st.builds(
    lambda a, p: str(ipaddress.IPv4Network((a, p), strict=False)), v4, st.integers(8, 32)
)


@st.composite
def address(draw: st.DrawFn, near: list[str]) -> str | None:
    kind = draw(st.integers(0, 9))
    if kind <= 4 and near:
        net = ipaddress.ip_network(draw(st.sampled_from(near)))
        edge = int(draw(st.sampled_from([net.network_address, net.broadcast_address])))
        return str(ipaddress.IPv4Address(min(max(edge + draw(st.integers(-70, 70)), 0), 2**32 - 1)))
    if kind <= 6:
        return str(ipaddress.IPv4Address(draw(v4)))
    return draw(
        st.sampled_from([
            None, "", "010.0.0.1", "1.2.3.04", "256.1.1.1", "1.2.3", "1.2.3.4.5", "1..2.3",
            "::1", "2001:db8::1", "::ffff:1.2.3.4", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4/32",
            "255.255.255.255", "0.0.0.0", "100.100.100.100", "1.2.3.4x",
        ])
    )  # fmt: skip


def _canonical(text: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def _exact_hits(nets: list[str], ips: list[str], texts: list[str | None]) -> list[bool]:
    """What the exact path finds: the CIDR index, or the text equal to a listed address."""
    labels = CidrIndex.build(pl.Series(nets, dtype=pl.String)).lookup(
        pl.Series(texts, dtype=pl.String)
    )
    listed = set(ips)
    return [bool(lab >= 0) or t in listed for lab, t in zip(labels, texts, strict=True)]


@settings(max_examples=50, deadline=None)
@given(
    st.data(),
    st.lists(v4_net, max_size=8, unique=True),
    st.lists(st.integers(0, 200), max_size=4),
)
def test_address_screen_keeps_every_hit(
    data: st.DataObject, nets: list[str], cuts: list[int]
) -> None:
    ips = data.draw(st.lists(address(nets), max_size=5))
    ips = [a for a in ips if a]
    canonical = [a for a in ips if a.count(".") == 3 and a == _canonical(a)]
    texts = data.draw(st.lists(address(nets + [f"{a}/32" for a in canonical]), max_size=80))
    screen = AddressScreen.build(CidrIndex.build(pl.Series(nets, dtype=pl.String)), pl.Series(ips))
    kept = set(screen.rows(_chunked(texts, cuts)).tolist())
    for i, hit in enumerate(_exact_hits(nets, ips, texts)):
        if hit:
            assert i in kept, texts[i]
        if texts[i] in (None, ""):
            assert i not in kept


def test_address_screen_stops_clear_blocks() -> None:
    """A canonical address far from every listed range and address is screened out; one in a
    touched block, and anything not a canonical dotted quad, is let through."""
    screen = AddressScreen.build(
        CidrIndex.build(pl.Series(["10.1.0.0/16", "::/0"])), pl.Series(["192.0.2.7", "01.2.3.4"])
    )
    texts = ["10.1.200.3", "10.2.0.1", "192.0.2.8", "192.0.3.8", "8.8.8.8", "2001:db8::1",
             "010.1.0.1", "01.2.3.4", "192.000.2.7", "203.0.113.200"]  # fmt: skip
    kept = screen.rows(_chunked(texts, [3, 7])).tolist()
    assert kept == [0, 2, 5, 6, 7, 8]


def test_address_screen_repeats_and_chunks() -> None:
    """The per-view memory of answers is per chunk: the same views in other chunks (the same
    buffer number and offset naming other bytes) are read again."""
    a = [f"198.51.100.{i}" for i in range(200)] * 30  # out of line (>12 bytes) and repeated
    b = [f"203.0.113.{i}" for i in range(200)] * 30
    series = pl.concat([pl.Series(a), pl.Series(b), pl.Series(a)], rechunk=False)
    screen = AddressScreen.build(CidrIndex.build(pl.Series(["203.0.113.128/25"])), None)
    kept = screen.rows(series)
    want = np.flatnonzero(np.array([x.startswith("203.0.113.") and int(x.rsplit(".")[-1]) >= 128
                                    for x in a + b + a]))  # fmt: skip
    assert np.array_equal(kept, want)


# Texts on both sides of every length the exact-address hash treats apart: up to 12 bytes (in the
# view), 13-16 (three words of the data), longer (every byte); and texts that differ only past
# the twelfth, thirteenth or sixteenth byte.
address_text = st.one_of(
    st.builds(lambda a: str(ipaddress.IPv4Address(a)), v4),
    st.builds(lambda a: str(ipaddress.IPv6Address(a)), st.integers(0, 2**128 - 1)),
    st.sampled_from([
        "1.2.3.4", "100.100.100.10", "100.100.100.100", "100.100.100.101", "2001:db8::ff00:42",
        "2001:db8::ff00:43", "123456789012", "1234567890123", "1234567890124", "::1", "a",
        "1234567890123456", "1234567890123457", "12345678901234567",
    ]),
    st.text("0123456789.:abcdef", min_size=1, max_size=20),
)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(
    st.lists(address_text, max_size=6),
    st.lists(st.one_of(st.none(), st.just(""), address_text), min_size=1, max_size=60),
    st.lists(st.integers(0, 200), max_size=4),
    st.integers(0, 9),
    st.data(),
)
def test_exact_address_screen_is_text_membership(
    listed: list[str], texts: list[str | None], cuts: list[int], pad: int, data: st.DataObject
) -> None:
    """The exact-address screen lets through exactly the rows whose text is listed: texts of
    every length class, nulls and empty strings, columns of several chunks, and bytes that lie
    at any alignment in their buffer (a prefix cut off each text moves it); whole, and in small
    pieces on threads (a piece may start anywhere in a chunk and its validity bits)."""
    texts = texts + data.draw(st.lists(st.sampled_from(listed), max_size=5)) if listed else texts
    shifted = pl.Series([None if t is None else "x" * pad + t for t in texts], dtype=pl.String)
    column = _chunked(shifted.str.slice(pad).to_list(), cuts) if pad % 2 else shifted.str.slice(pad)
    screen = ExactAddressScreen.build(pl.Series(listed, dtype=pl.String))
    want = [i for i, t in enumerate(texts) if t and t in set(listed)]
    assert screen.rows(column).tolist() == want
    import mamori.intel.screen as screen_module

    piece = screen_module._PIECE
    screen_module._PIECE = data.draw(st.integers(1, 9))  # pieces cut inside chunks, on threads
    try:
        assert screen.rows(column).tolist() == want
    finally:
        screen_module._PIECE = piece


# ---- names -----------------------------------------------------------------------------------

label = st.text("abcXYZ0-", min_size=0, max_size=6)
domain = st.lists(label, min_size=1, max_size=3).map(".".join)


@st.composite
def host_text(draw: st.DrawFn, listed: list[str]) -> str | None:
    """A DNS query, SNI or HTTP host as records hold them: below a listed domain or not, any
    case, root dots, ports, bytes outside ASCII."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([None, "", ".", ":80", "a.b:", "a.b:x1", "[::1]:8080"]))
    if listed and draw(st.booleans()):
        below = draw(st.lists(label, max_size=2))
        base = ".".join([*below, draw(st.sampled_from(listed))])
    else:
        base = draw(domain)
    base = "".join(c.upper() if draw(st.booleans()) else c for c in base)
    base += draw(st.sampled_from(["", "", ".", ".."]))
    base += draw(st.sampled_from(["", "", ":8080", ":0", ".:443"]))
    if draw(st.integers(0, 9)) == 0:
        base = draw(st.sampled_from(["é", "K", "ß."])) + base  # Kelvin sign: 'k' in lower case
    return base


def _name_hits(listed: list[str], names: list[str | None], host: bool) -> list[bool]:
    """What the exact path finds: ``match()``'s spelling of a host, then the domain index."""
    series = pl.Series(names, dtype=pl.String)
    if host:
        series = pl.select(
            series.str.to_lowercase().str.strip_chars_end(".").str.replace(r":\d+$", "")
        ).to_series()
    rec, _ = DomainIndex.build(pl.Series(listed, dtype=pl.String)).lookup(series)
    found = set(rec.tolist())
    return [i in found for i in range(len(names))]


@settings(max_examples=50, deadline=None)
@given(
    st.data(),
    st.lists(domain, min_size=1, max_size=10),
    st.booleans(),
    st.lists(st.integers(0, 200), max_size=4),
)
def test_name_screen_keeps_every_hit(
    data: st.DataObject, listed: list[str], host: bool, cuts: list[int]
) -> None:
    listed = [*listed, "k.x", "ss"]  # what Unicode lower-casing can turn a name into
    names = data.draw(st.lists(host_text(listed), max_size=60))
    screen = NameScreen(DomainIndex.build(pl.Series(listed, dtype=pl.String)))
    kept = set(screen.rows(_chunked(names, cuts), host=host).tolist())
    for i, hit in enumerate(_name_hits(listed, names, host)):
        if hit:
            assert i in kept, names[i]


def test_name_screen_stops_unlisted_names() -> None:
    screen = NameScreen(DomainIndex.build(pl.Series(["evil.example", "bad.test."])))
    names = ["www.evil.example", "evil.example.org", "good.example", "BAD.TEST.", "x.bad.test:81",
             "bad.test.:8080", "notbad.test", None, ""]  # fmt: skip
    assert screen.rows(pl.Series(names), host=True).tolist() == [0, 3, 4, 5]
    assert screen.rows(pl.Series(names), host=False).tolist() == [0, 3]


# ---- URLs ------------------------------------------------------------------------------------


def _url_hits(urls: list[str], hosts: list[str | None], uris: list[str | None]) -> list[bool]:
    """What the exact path finds: ``match()``'s URL of a record, whole or without its query,
    equal to a listed URL."""
    full = pl.select(
        (
            pl.Series(hosts, dtype=pl.String).str.to_lowercase().str.strip_chars_end(".")
            + pl.Series(uris, dtype=pl.String).fill_null("/")
        ).alias("u")
    ).to_series()
    bare = full.str.replace(r"\?.*$", "")
    listed = set(urls)
    return [f in listed or b in listed for f, b in zip(full, bare, strict=True)]


@st.composite
def url_row(draw: st.DrawFn, listed: list[str]) -> tuple[str | None, str | None]:
    if listed and draw(st.booleans()):
        u = draw(st.sampled_from(listed))
        cut = draw(st.integers(1, max(1, len(u) - 1)))
        host, uri = u[:cut], u[cut:]
        host = "".join(c.upper() if draw(st.booleans()) else c for c in host)
        host += draw(st.sampled_from(["", "", ".", ".."]))
        uri += draw(st.sampled_from(["", "", "?q=1", "?", "?a?b", "\n", "?x\ny"]))
        return host, draw(st.sampled_from([uri, uri, None])) if uri == "/" else uri
    return (
        draw(st.sampled_from([None, "", "a.b", "Ä.b", "long-host-name.example"])),
        draw(st.sampled_from([None, "", "/", "/x?y", "/a/long/path/of/bytes?and=query"])),
    )


@settings(max_examples=50, deadline=None)
@given(
    st.data(),
    st.lists(
        st.sampled_from(
            [
                "a.b/",
                "a.b/x",
                "a.b/x?y",
                "bad.example/p/1.exe",
                "ä.b/",
                "/x?y",
                "long-host-name.example/a/long/path/of/bytes",
            ]
        ),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.integers(0, 100), max_size=3),
)
def test_url_screen_keeps_every_hit(data: st.DataObject, urls: list[str], cuts: list[int]) -> None:
    rows = data.draw(st.lists(url_row(urls), max_size=40))
    hosts = [h for h, _ in rows]
    uris = [u for _, u in rows]
    kept = set(UrlScreen.build(pl.Series(urls)).rows(_chunked(hosts, cuts), _chunked(uris, [])))
    for i, hit in enumerate(_url_hits(urls, hosts, uris)):
        if hit:
            assert i in kept, rows[i]


def test_url_screen_stops_unlisted_urls() -> None:
    screen = UrlScreen.build(pl.Series(["bad.example/p/1.exe", "a.b/"]))
    hosts = ["BAD.example.", "bad.example", "good.example", "a.b", "a.b", None]
    uris = ["/p/1.exe?x=1", "/p/2.exe", "/p/1.exe", None, "/?q", "/"]
    assert screen.rows(pl.Series(hosts), pl.Series(uris)).tolist() == [0, 3, 4]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["10.0.0.1", "10.0.0.2", "::1", "2001:db8::5", "010.0.0.1"]), max_size=4
    ),
    st.lists(
        st.tuples(
            st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3", "::1", "010.0.0.1", "x"]),
            st.sampled_from(["10.0.0.2", "192.0.2.9", "2001:db8::5"]),
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_exact_addresses_without_ranges_hit_by_text(listed: list[str], rows: list) -> None:  # type: ignore[type-arg]
    """A store of addresses and no ranges takes the text-lookup screen: every hit is a row whose
    originator or responder text is listed, and every such row is a hit."""
    from mamori.intel.match import match
    from support.intel_frames import indicators, lake_frames

    conn = [
        {"uid": f"C{k}", "orig_h": o, "resp_h": r, "orig_p": 1, "resp_p": 2}
        for k, (o, r) in enumerate(rows)
    ]
    hits = match(indicators([("ip", v, None) for v in listed]), lake_frames(conn=conn))
    got = sorted(set(zip(hits["uid"].to_list(), hits["seen"].to_list(), strict=True)))
    want = sorted({(c["uid"], a) for c in conn for a in (c["orig_h"], c["resp_h"]) if a in listed})
    assert got == want


def test_exact_address_screen_ignores_view_padding() -> None:
    """Bytes past a short text in its view are not the text: a writer may leave anything there
    (here 0xAB), and the screen must still find the listed texts."""
    import pyarrow as pa

    texts = ["1.2.3.4", "::1", "10.0.0.1", "100.100.100.1"]
    views = np.zeros((len(texts), 2), np.uint64)
    raw = views.view(np.uint8).reshape(len(texts), 16)
    data = b""
    for i, t in enumerate(texts):
        b = t.encode()
        raw[i, :4] = np.frombuffer(np.uint32(len(b)).tobytes(), np.uint8)
        raw[i, 4:] = 0xAB
        if len(b) <= 12:
            raw[i, 4 : 4 + len(b)] = np.frombuffer(b, np.uint8)
        else:  # prefix, buffer 0, offset
            raw[i, 4:8] = np.frombuffer(b[:4], np.uint8)
            raw[i, 8:16] = np.frombuffer(np.array([0, len(data)], np.uint32).tobytes(), np.uint8)
            data += b
    arr = pa.Array.from_buffers(
        pa.string_view(), len(texts), [None, pa.py_buffer(views.tobytes()), pa.py_buffer(data)]
    )
    column = pl.from_arrow(arr)
    assert column.to_list() == texts  # type: ignore[union-attr]
    screen = ExactAddressScreen.build(pl.Series(["1.2.3.4", "::1", "100.100.100.1"]))
    assert screen.rows(column).tolist() == [0, 1, 3]  # type: ignore[arg-type]
