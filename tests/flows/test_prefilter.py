"""The vectorised prefilter must be a superset of every analyser's signature, and cheap to reject."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import mamori.flows.prefilter as PF
from mamori.flows.analyzers.base import registered
from mamori.flows.prefilter import candidates


def _rows(payloads: list[bytes], proto: int = 6, sport: int = 40000, dport: int = 40001):
    buf = np.frombuffer(b"".join(payloads) + b"\0", np.uint8)
    offs = np.cumsum([0] + [len(p) for p in payloads[:-1]]).astype(np.int64)
    caps = np.array([len(p) for p in payloads], np.int32)
    n = len(payloads)
    return (
        buf,
        offs,
        caps,
        np.full(n, proto, np.uint8),
        np.full(n, sport, np.int32),
        np.full(n, dport, np.int32),
    )


def test_known_protocol_starts_are_candidates() -> None:
    payloads = [
        b"GET / HTTP/1.1\r\n",
        b"get /x HTTP/1.0\r\n",  # case-blind
        b"HTTP/1.1 200 OK\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01",  # TLS ClientHello record
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"220 mail.example ESMTP\r\n",
        b"EHLO client\r\n",
        b"USER anonymous\r\n",
        b"\x05\x01\x00",  # SOCKS5 greeting
        b"G",  # a request arriving one byte per segment
        b"  GET / HTTP/1.1",  # leading whitespace
    ]
    mask = candidates(*_rows(payloads), list(registered().values()))
    assert mask.all(), [p for p, m in zip(payloads, mask, strict=True) if not m]


def test_scan_and_flood_payload_is_rejected() -> None:
    payloads = [b"\x00" * 20, b"\xde\xad\xbe\xef" * 4, b"zzzz", b"\x30\x82\x01\x00"]
    mask = candidates(*_rows(payloads), list(registered().values()))
    assert not mask.any()


def test_ports_where_zeek_attaches_by_port() -> None:
    analyzers = list(registered().values())
    junk = [b"\x30\x82\x01\x00"]
    assert candidates(*_rows(junk, proto=17, dport=53), analyzers).all()  # DNS by port
    assert candidates(*_rows(junk, proto=6, dport=80), analyzers).all()  # HTTP by port
    assert not candidates(*_rows(junk, proto=17, dport=161), analyzers).any()


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=64))
def test_superset_of_every_signature(data: bytes) -> None:
    """Whatever an analyser's ``matches`` accepts as a first payload, the prefilter lets through."""
    analyzers = list(registered().values())
    cand = bool(candidates(*_rows([data]), analyzers)[0])
    for a in analyzers:
        if "tcp" not in a.transports or a.service == "dns":
            continue  # DNS is attached by port, like Zeek
        for orig, resp in ((data, b""), (b"", data)):
            try:
                ok = a.matches("tcp", 40000, 40001, orig, resp)
            except Exception:
                ok = False
            if ok:
                assert cand, (a.service, data)


def _plain(
    payloads: list[bytes], proto: int, sport: int, dport: int, analyzers: list
) -> list[bool]:  # type: ignore[type-arg]
    """The prefilter's rule, written out per payload: leading whitespace, a port an analyser is
    attached to, or a (case-blind, possibly still arriving) prefix."""
    out = []
    for data in payloads:
        head = data[:8].upper()
        hit = data[:1] in (b" ", b"\t", b"\r", b"\n")
        for a in analyzers:
            for transport, port in getattr(a, "ports", ()):
                hit |= proto == (6 if transport == "tcp" else 17) and port in (sport, dport)
            for pattern in getattr(a, "prefixes", ()):
                key = pattern.upper()[:8]
                n = min(len(head), len(key))
                hit |= head[:n] == key[:n]
        out.append(hit)
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=20),
    st.sampled_from([6, 17]),
    st.sampled_from([22, 53, 80, 443, 5000, 40000]),
)
def test_compiled_pass_agrees_with_the_plain_rule(
    payloads: list[bytes], proto: int, port: int
) -> None:
    everyone = list(registered().values())
    plain = [a for a in everyone if getattr(a, "prefilter", None) is None]
    got = candidates(*_rows(payloads, proto=proto, dport=port), plain).tolist()
    assert got == _plain(payloads, proto, 40000, port, plain)
    # An analyser's own vectorised test may only add candidates to its patterns and ports.
    full = candidates(*_rows(payloads, proto=proto, dport=port), everyone).tolist()
    wider = _plain(payloads, proto, 40000, port, everyone)
    assert all(f or not e for f, e in zip(full, wider, strict=True))


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=1, max_size=40),
    st.lists(st.tuples(st.integers(0, 45), st.integers(1, 20)), min_size=1, max_size=20),
)
def test_heads_and_their_valid_bytes_as_read_byte_by_byte(
    data: bytes, rows: list[tuple[int, int]]
) -> None:
    """The compiled pass's heads and valid marks (whole heads read at once, the rest byte by
    byte), for rows wholly inside the buffer, reaching past its end, or shorter than a head."""
    buf = np.frombuffer(data, np.uint8)
    offs = np.array([min(o, len(data) - 1) for o, _c in rows], np.int64)
    caps = np.array([c for _o, c in rows], np.int32)
    n = len(rows)
    raw = np.empty((n, PF.HEAD), np.uint8)
    valid = np.empty((n, PF.HEAD), np.bool_)
    words, lens, bounds, ports, _extras = PF._table(list(registered().values()))
    zeros = np.zeros(n, np.int32)
    PF._scan(buf, offs, caps, np.full(n, 6, np.uint8), zeros, zeros, words, lens, bounds, ports,
             PF._MASKS, raw, valid)  # fmt: skip
    for i, (off, cap) in enumerate(zip(offs.tolist(), caps.tolist(), strict=True)):
        for k in range(PF.HEAD):
            want = data[min(off + k, len(data) - 1)] if k < cap else 0
            assert (raw[i, k], valid[i, k]) == (want, k < cap)
