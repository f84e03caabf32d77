"""Stream prefixes used for recognition agree with full reassembly, whatever the arrival order;
FIN and RST marks land where Zeek delivers those events."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.flows.payload import (
    DPD_BUFFER,
    FIN,
    RST,
    PayloadRouter,
    _Pending,
    _prefix,
    _reassemble,
    _with_marks,
)


def _reference(parts: list[tuple[int, bool, int, bytes]], side: bool, limit: int) -> bytes:
    out = bytearray()
    for seg in _reassemble([x for x in parts if x[1] == side], True):
        if seg.gap or len(out) >= limit:
            break
        out += seg.data
    return bytes(out[:limit])


@st.composite
def streams(draw: st.DrawFn, repeat: int = 1) -> list[tuple[int, bool, int, bytes]]:
    """Segments of two directions cut from random streams, near the 32-bit wrap, then
    optionally duplicated, dropped or reordered (``repeat`` makes streams up to that many
    times longer)."""
    parts = []
    streams = {}
    for side in (True, False):
        base = draw(st.sampled_from([0, 1000, 2**32 - 5, 2**31]))
        data = draw(st.binary(min_size=0, max_size=60)) * draw(st.integers(1, repeat))
        streams[side] = (base, data)
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
        pos = 0
        for cut in [*cuts, len(data)]:
            parts.append((len(parts), side, (base + pos) & 0xFFFFFFFF, data[pos:cut]))
            pos = cut
    if draw(st.booleans()):
        parts = draw(st.permutations(parts))
    if parts and draw(st.booleans()):
        parts.append(draw(st.sampled_from(parts)))  # a retransmission
    for _ in range(draw(st.integers(0, 2))):
        # A segment re-cut from the stream (overlapping others, maybe running past its end or
        # starting before it), its bytes kept or, sometimes, changed.
        side = draw(st.booleans())
        base, data = streams[side]
        a = draw(st.integers(-3, len(data) + 2))
        piece = bytearray(data[max(a, 0) : max(a, 0) + draw(st.integers(0, 70))])
        piece = bytearray(b"\x00" * max(0, -a)) + piece + draw(st.binary(max_size=4))
        if piece and draw(st.booleans()):
            piece[draw(st.integers(0, len(piece) - 1))] ^= 0x20
        at = draw(st.integers(0, len(parts)))
        parts.insert(at, (len(parts), side, (base + a) & 0xFFFFFFFF, bytes(piece)))
    if len(parts) > 2 and draw(st.booleans()):
        del parts[draw(st.integers(0, len(parts) - 1))]  # a hole
    return [(ts, o, seq, d) for ts, (_t, o, seq, d) in enumerate(parts)]


@given(streams(), st.sampled_from([1, 7, 32, 1024]))
def test_prefix_equals_reassembled_stream(parts, limit: int) -> None:
    for side in (True, False):
        assert _prefix(parts, side, limit) == _reference(parts, side, limit)


@given(streams(repeat=40))
def test_grown_heads_equal_the_prefix_after_every_segment(parts) -> None:
    """The router's incremental prefixes (what recognition sees) match _prefix at every step."""
    p = _Pending()
    for k, (ts, is_orig, seq, data) in enumerate(parts):
        p.parts.append((ts, is_orig, seq, data))
        if k % 3 == 2:
            continue  # recognition does not ask after every segment
        for side in (True, False):
            assert p.head(side) == _reference(parts[: k + 1], side, DPD_BUFFER)


@settings(max_examples=300)
@given(st.data())
def test_grown_heads_equal_the_prefix_under_disagreeing_retransmissions(data) -> None:
    """Keep-alive probes and re-sent pieces whose bytes disagree with what was sent first (from
    inside a segment, from its start, across a boundary, past the end), arriving in order or
    with capture time going backwards: the incremental prefixes still equal reassembly."""
    stream = data.draw(st.binary(min_size=1, max_size=24))
    base = data.draw(st.sampled_from([0, 2**32 - 7]))
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(stream)), max_size=4))))
    pieces = [
        (a, stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True) if b > a
    ]
    parts = []
    for a, piece in pieces:
        parts.append((a, piece))
        for _ in range(data.draw(st.integers(0, 2))):
            at = data.draw(st.integers(0, len(stream) + 1))
            size = data.draw(st.integers(1, 6))
            probe = bytearray((stream + b"\0" * 8)[at : at + size])
            probe[data.draw(st.integers(0, size - 1))] ^= 0x41
            parts.append((at, bytes(probe)))
    ts = [
        data.draw(st.integers(0, 3)) if data.draw(st.booleans()) else 10 * k
        for k in range(len(parts))
    ]
    full = [(t, True, (base + a) & 0xFFFFFFFF, d) for t, (a, d) in zip(ts, parts, strict=True)]
    p = _Pending()
    for k, part in enumerate(full):
        p.parts.append(part)
        assert p.head(True) == _reference(full[: k + 1], True, DPD_BUFFER)


@given(streams(), st.booleans(), st.data())
def test_marks_fall_where_zeek_delivers_them(parts, with_rst: bool, data: st.DataObject) -> None:
    """A side's FIN comes after all of that side's data, carrying the bytes still missing before
    it as its gap; a RST sits at its arrival time, after data delivered at the same instant; the
    data segments are exactly the plain reassembly's, in the same order."""
    plain = list(_reassemble(parts, True))
    marks = []
    for side in (True, False):
        mine = [p for p in parts if p[1] == side]
        if mine and data.draw(st.booleans()):
            # FIN just past the side's highest byte, plus a few bytes that never arrived.
            lost = data.draw(st.integers(0, 3))
            top = max((p[2] + len(p[3])) & 0xFFFFFFFF for p in mine)  # no wrap in these streams
            marks.append((len(parts) + side, side, (top + lost) & 0xFFFFFFFF, FIN))
    if with_rst and parts:
        at = data.draw(st.sampled_from(parts))
        marks.append((at[0], not at[1], 0, RST))
    got = _with_marks(parts, marks)
    assert [s for s in got if not s.flags] == plain
    for k, seg in enumerate(got):
        if seg.flags == FIN:
            later = [s for s in got[k + 1 :] if s.is_orig == seg.is_orig and not s.flags]
            assert not later, "data of a side after its FIN"
            assert seg.gap >= 0
        if seg.flags == RST:
            before = [s for s in got[:k] if s.ts > seg.ts]
            after = [s for s in got[k + 1 :] if not s.flags and s.ts <= seg.ts]
            assert not before and not after


def test_fin_gap_counts_the_missing_bytes() -> None:
    parts = [(1, True, 100, b"abcd"), (2, True, 108, b"ijkl"), (3, False, 500, b"xy")]
    got = _with_marks(parts, [(4, True, 112 + 3, FIN), (5, False, 502, FIN)])
    fins = {s.is_orig: s for s in got if s.flags == FIN}
    assert fins[True].gap == 3 and fins[False].gap == 0
    assert got[-1].flags == FIN and got[-2].flags == FIN


# Protocol starts the TCP signatures look for (and near misses are made from them below).
_STARTS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"  post /x HTTP/1.0\r\n",
    b"x-ms-enumatts / HTTP/1.1\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"220 ftp.example FTP server ready\r\n",
    b"120 wait\r\n",
    b"USER anonymous\r\n",
    b"\tfeat\r\n",
    b"220 mail.example ESMTP\r\n",
    b"220-mail SMTP\r\n",
    b"ehlo client\r\n",
    b"\x04\x01\x00\x50\x0a\x00\x00\x01user\x00",
    b"\x00\x5a\x00\x00\x00\x00\x00\x00",
    b"\x05\x01\x00",
    b"\x05\x00",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"banner text\r\nSSH-2.0-x\r\n",
    b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
    b"\x16\x03\x03\x00\x05\x02\x00\x00\x01\x00",
    b"\x80\x2e\x01\x00\x02\x00\x15",
    b"\x00\x21\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01",
]


@st.composite
def _prefix_pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    out = []
    for _side in range(2):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            out.append(b"")
        elif kind == 1:
            out.append(draw(st.binary(max_size=40)))
        else:
            start = bytearray(draw(st.sampled_from(_STARTS)))
            if kind == 3 and start:
                start[draw(st.integers(0, len(start) - 1))] = draw(st.integers(0, 255))
            out.append(bytes(start[: draw(st.integers(0, len(start)))]))
    return out[0], out[1]


@settings(max_examples=600)
@given(_prefix_pairs(), st.sampled_from([21, 22, 25, 53, 80, 137, 443, 40000]))
def test_first_byte_gates_never_hide_a_match(pair: tuple[bytes, bytes], port: int) -> None:
    """The router only skips an analyser's ``matches`` where its ``opens`` gate says the first
    bytes rule it out: on real protocol starts, near misses and arbitrary bytes, whenever
    ``matches`` holds the gate lets it through, and the router picks what the full loop would."""
    orig, resp = pair
    key = (orig[0] if orig else -1, resp[0] if resp else -1)
    router = PayloadRouter()
    speakers = router._speakers["tcp"]
    for a in speakers:
        if a.matches("tcp", 40000, port, orig, resp):
            assert getattr(a, "opens", None) is None or a.opens(*key), a.service
    want = next((a for a in speakers if a.matches("tcp", 40000, port, orig, resp)), None)
    p = _Pending()
    p.parts = [(1, True, 100, orig)] if orig else []
    p.parts += [(2, False, 900, resp)] if resp else []
    router.conns[7] = p
    router._decide(7, p, ("tcp", 40000, port), final=True)
    assert p.analyzer is want


def test_first_byte_gates_let_every_real_start_through() -> None:
    """Every pair of the starts above, whole or cut short, and with one side silent."""
    router = PayloadRouter()
    sides = [b""] + [s[:k] for s in _STARTS for k in (1, 4, len(s))]
    for orig in sides:
        for resp in sides:
            key = (orig[0] if orig else -1, resp[0] if resp else -1)
            for a in router._speakers["tcp"]:
                if a.matches("tcp", 40000, 80, orig, resp):
                    assert getattr(a, "opens", None) is None or a.opens(*key), (a.service, key)
