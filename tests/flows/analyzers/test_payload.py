"""Payload routing and reassembly (flows/payload.py): what analysers receive from the tracker."""

from __future__ import annotations

import numpy as np

from mamori.flows.conversation import Conversation
from mamori.flows.payload import PayloadRouter, _reassemble

SYN = 0x02


def _route(router: PayloadRouter, packets: list[tuple[int, bool, int, int, bytes]]) -> None:
    """Feed one batch of (ts_ns, is_orig, seq, flags, payload) rows of connection 0 (port 80)."""
    buf = b"".join(p[4] for p in packets)
    offs = np.cumsum([0] + [len(p[4]) for p in packets[:-1]])
    n = len(packets)
    cols = {
        "proto": np.full(n, 6, np.uint8),
        "pay_cap": np.array([len(p[4]) for p in packets], np.int64),
        "pay_off": offs.astype(np.int64),
        "seq": np.array([p[2] for p in packets], np.int64),
        "flags": np.array([p[3] for p in packets], np.uint8),
        "sport": np.array([50000 if p[1] else 80 for p in packets], np.uint16),
        "dport": np.array([80 if p[1] else 50000 for p in packets], np.uint16),
    }
    router.route(
        np.frombuffer(buf, np.uint8),
        np.zeros(n, np.int64),
        np.array([p[1] for p in packets], np.uint8),
        np.array([p[0] for p in packets], np.int64),
        cols,
    )


def _finish(router: PayloadRouter) -> Conversation | None:
    conv = Conversation("Cpay", 1.0, "10.0.0.1", 50000, "10.0.0.2", 80, "tcp")
    got = router.finish(conv, 0)
    return None if got is None else got[1]


def test_segment_that_overtook_a_hole_is_delivered_when_the_hole_fills() -> None:
    # The server's second segment arrives first: analysers must still see the stream in order,
    # and after the client's data that was sent before the hole was filled (Zeek's delivery time).
    parts = [
        (10, True, 1000, b"hello"),
        (20, False, 5005, b"world"),
        (30, True, 1005, b"!"),
        (40, False, 5000, b"HELLO"),
    ]
    segs = list(_reassemble(parts, tcp=True))
    assert [(s.is_orig, s.data) for s in segs] == [
        (True, b"hello"),
        (True, b"!"),
        (False, b"HELLO"),
        (False, b"world"),
    ]
    assert [s.ts for s in segs] == [10e-9, 30e-9, 40e-9, 40e-9]
    assert all(s.gap == 0 for s in segs)


def test_data_on_syn_counts_one_past_its_sequence_number_before_decision_too() -> None:
    router = PayloadRouter()
    _route(
        router,
        [
            (1, True, 100, SYN, b"GET / HT"),  # TCP Fast Open: payload on the SYN, still pending
            (2, False, 500, SYN | 0x10, b""),
            (3, False, 501, 0x10, b"HTTP/1.0 200 OK\r\n\r\n"),  # both sides seen: decided
            (4, True, 109, 0x10, b"TP/1.0\r\n\r\n"),
        ],
    )
    conv = _finish(router)
    assert conv is not None
    assert conv.stream(True) == b"GET / HTTP/1.0\r\n\r\n"
    assert [s.gap for s in conv.segments] == [0, 0, 0]


def test_request_typed_one_byte_per_segment_is_still_recognised() -> None:
    # tcp-http-with-padding.pcap: the client sends "G", "E", "T / HTTP", ... on a non-HTTP port;
    # Zeek's signature matches the stream, not the first packet.
    pieces = [b"G", b"E", b"T / HTTP", b"/1", b".", b"0", b"\n", b"\n"]
    rows, seq = [], 1
    for i, piece in enumerate(pieces):
        rows.append((i + 1, True, seq, 0x18, piece))
        seq += len(piece)
    rows.append((20, False, 1, 0x18, b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"))
    router = PayloadRouter()
    _route(router, rows)
    p = router.conns.get(0)
    assert p is not None and p.analyzer is not None and p.analyzer.service == "http"
    conv = _finish(router)
    assert conv is not None and conv.stream(True) == b"GET / HTTP/1.0\n\n"


def test_unrecognised_connection_is_given_up_after_a_bounded_wait() -> None:
    router = PayloadRouter()
    _route(router, [(i, True, 1 + 10 * i, 0x18, b"\x00" * 10) for i in range(20)])
    assert 0 in router.ignored and 0 not in router.conns
