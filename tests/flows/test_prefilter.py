"""The vectorised prefilter must be a superset of every analyser's signature, and cheap to reject."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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
