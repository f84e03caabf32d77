"""The router's column path (segments of decided connections kept as blocks, conversations
assembled by one compiled pass) gives analysers exactly what the segment-by-segment router did."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import mamori.flows.payload as PL
from mamori.flows import dns_batch
from mamori.flows.conversation import Conversation
from mamori.flows.payload import PayloadRouter, _Pending, fill, fill_many, parts_of, payload_of

# Payloads that start protocols the analysers recognise (or nearly), and noise.
_DNS_Q = bytes.fromhex("12340100000100000000000003777777076578616d706c6503636f6d0000010001")
_DNS_R = bytes.fromhex("12348180000100010000000003777777076578616d706c6503636f6d0000010001")
_PIECES = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GE",
    b"T /x HTTP/1.0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    b"SSH-2.0-OpenSSH_9.0\r\n",
    b"220 mail ESMTP\r\n",
    b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
    _DNS_Q,
    _DNS_R,
    b"",
]


class _Reference(PayloadRouter):
    """The router as it was: one Python step and one bytes object per kept segment, and every
    decision made by the analysers' ``matches`` (no column tests)."""

    def __init__(self) -> None:
        super().__init__()
        self._datagrams = None

    def _payload(self, buf, row_conn, row_orig, ts_ns, cols) -> None:  # type: ignore[no-untyped-def]
        proto = cols["proto"]
        mask = (row_conn >= 0) & (cols["pay_cap"] > 0) & ((proto == 6) | (proto == 17))
        idx = np.nonzero(mask)[0]
        if idx.size == 0:
            return
        conns = row_conn[idx]
        cand = PL.candidates(
            buf, cols["pay_off"][idx], cols["pay_cap"][idx], proto[idx],
            cols["sport"][idx], cols["dport"][idx], self.analyzers,
        )  # fmt: skip
        keep = cand.copy()
        if self.conns:
            keep |= np.isin(conns, np.fromiter(self.conns.keys(), np.int64, len(self.conns)))
        if cand.any():
            uniq, inv = np.unique(conns, return_inverse=True)
            first = np.full(uniq.shape[0], np.iinfo(np.int64).max, np.int64)
            pos = np.arange(conns.shape[0], dtype=np.int64)
            np.minimum.at(first, inv[cand], pos[cand])
            keep |= pos >= first[inv]
        if self.ignored:
            keep &= ~np.isin(conns, np.fromiter(self.ignored, np.int64, len(self.ignored)))
        idx, conns = idx[keep], conns[keep]
        raw = buf.data
        for k, c in zip(idx.tolist(), conns.tolist(), strict=True):
            if c in self.ignored:
                continue
            p = self.conns.get(c)
            if p is None:
                p = self.conns[c] = _Pending()
            start = int(cols["pay_off"][k])
            data = bytes(raw[start : start + int(cols["pay_cap"][k])])
            is_orig = bool(row_orig[k])
            seq = int(cols["seq"][k]) + ((int(cols["flags"][k]) & 0x02) != 0)
            ts = int(ts_ns[k])
            if not p.decided:
                p.first.setdefault(is_orig, data)
                p.parts.append((ts, is_orig, seq, data))
                if len(p.first) == 2 or len(p.parts) >= PL.PENDING_SEGMENTS:
                    sp, dp = int(cols["sport"][k]), int(cols["dport"][k])
                    udp = int(proto[k]) == 17
                    ident = ("udp" if udp else "tcp",) + ((sp, dp) if is_orig else (dp, sp))
                    self._decide(c, p, ident, final=False)
                continue
            side = 0 if is_orig else 1
            if p.kept[side] > PL.MAX_BYTES_PER_DIRECTION:
                data = b""
            p.kept[side] += len(data)
            p.parts.append((ts, is_orig, seq, data))


@st.composite
def traffic(draw: st.DrawFn) -> tuple[dict[int, tuple[int, int, int]], list[list[tuple]]]:
    """A few connections (proto, client port, server port) and batches of their packets:
    (connection or -1, is_orig, flags, payload)."""
    conns = {
        c: (
            draw(st.sampled_from([6, 17])),
            draw(st.sampled_from([40000, 40001])),
            draw(st.sampled_from([80, 53, 22, 25, 443, 9999])),
        )
        for c in range(draw(st.integers(1, 5)))
    }
    pieces = st.sampled_from(_PIECES)
    row = st.tuples(
        st.sampled_from([-1, *conns, *conns, *conns]),
        st.booleans(),
        st.sampled_from([0, 0, 0, 0, 0, 0x02, 0x01, 0x04, 0x11]),
        st.one_of(pieces, pieces, pieces, st.binary(max_size=40)),
    )
    batches = draw(st.lists(st.lists(row, max_size=40), min_size=1, max_size=5))
    return conns, batches


def _columns(conns, rows, seqs, clock):  # type: ignore[no-untyped-def]
    """One batch's buffer and columns, sequence numbers running on per connection and side."""
    buf = b"".join(r[3] for r in rows) or b"\0"
    n = len(rows)
    cols = {
        "proto": np.array([conns[r[0]][0] if r[0] >= 0 else 6 for r in rows], np.uint8),
        "pay_cap": np.array([len(r[3]) for r in rows], np.int64),
        "pay_len": np.array([len(r[3]) for r in rows], np.int64),
        "pay_off": np.cumsum([0] + [len(r[3]) for r in rows[:-1]]).astype(np.int64)[:n],
        "flags": np.array([r[2] for r in rows], np.uint8),
        "seq": np.zeros(n, np.int64),
        "sport": np.zeros(n, np.uint16),
        "dport": np.zeros(n, np.uint16),
    }
    for k, (c, is_orig, _f, data) in enumerate(rows):
        if c < 0:
            continue
        _proto, cp, sp = conns[c]
        cols["sport"][k], cols["dport"][k] = (cp, sp) if is_orig else (sp, cp)
        key = (c, is_orig)
        cols["seq"][k] = seqs.get(key, 2**32 - 30 if is_orig else 7)
        seqs[key] = (int(cols["seq"][k]) + len(data)) & 0xFFFFFFFF
    ts = clock + np.arange(n, dtype=np.int64) * 1000
    return buf, np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows]), ts, cols


def _conv(c: int, ident: tuple[int, int, int]) -> Conversation:
    proto = "tcp" if ident[0] == 6 else "udp"
    return Conversation(f"C{c}", 1.0, "10.0.0.1", ident[1], "10.0.0.2", ident[2], proto)


@settings(max_examples=400, deadline=None)
@given(traffic(), st.sampled_from([40, 8 * 1024 * 1024]), st.data())
def test_router_and_conversations_equal_the_segment_router(
    t, cap: int, data: st.DataObject
) -> None:
    conns, batches = t
    # Rows selected through the table of connection numbers, or (span 0) by the sort alone
    # (drawn before any module setting changes: a draw may end the example).
    span = data.draw(st.sampled_from([0, 1, 3, 1 << 22]))
    saved, saved_span = PL.MAX_BYTES_PER_DIRECTION, PL._TABLE_SPAN
    PL.MAX_BYTES_PER_DIRECTION = cap  # small caps exercise the per-direction limit
    PL._TABLE_SPAN = span
    try:
        new, ref = PayloadRouter(), _Reference()
        arena = np.zeros(4096, np.uint8)  # one buffer, reused by every batch as the reader's is
        seqs: dict[tuple[int, bool], int] = {}
        open_ = set(conns)
        for b, rows in enumerate(batches):
            buf, row_conn, row_orig, ts, cols = _columns(conns, rows, seqs, b * 10**6)
            arena[: len(buf)] = np.frombuffer(buf, np.uint8)
            view = arena[: len(buf)]
            row_conn = np.where(np.isin(row_conn, list(open_)), row_conn, -1)
            new.route(view, row_conn, row_orig, ts, cols)
            ref.route(view.copy(), row_conn, row_orig, ts, cols)
            assert new.ignored == ref.ignored
            assert new.conns.keys() == ref.conns.keys()
            for c, p in new.conns.items():
                q = ref.conns[c]
                assert (p.decided, p.analyzer, p.kept, p.marks) == (
                    q.decided, q.analyzer, q.kept, q.marks,
                )  # fmt: skip
                assert parts_of(p) == q.parts
            # Some connections end: the column path assembles them all at once.
            if b == len(batches) - 1:
                ended = sorted(open_)
            elif open_ and data.draw(st.integers(0, 3)) == 0:
                ended = sorted(data.draw(st.sets(st.sampled_from(sorted(open_)), max_size=2)))
            else:
                ended = []
            convs, analyzers, kept, expected = [], [], [], []
            for c in ended:
                proto = "tcp" if conns[c][0] == 6 else "udp"
                a = new.claim(c, (proto, conns[c][1], conns[c][2]))
                e = ref.finish(_conv(c, conns[c]), c)
                assert (a is None) == (e is None)
                if a is not None and e is not None:
                    convs.append(_conv(c, conns[c]))
                    analyzers.append(a[0])
                    kept.append(a[1])
                    expected.append(e[1])
                    if proto == "udp":
                        pl = payload_of([a[1]])
                        assert dns_batch.parts(
                            dns_batch.Batch([c], [1.0], [""], [""], [0], [""], [0], [], pl), 0
                        ) == parts_of(a[1])
            fill_many(convs, analyzers, kept)
            assert convs == expected
            new.settle()
            open_ -= set(ended)
    finally:
        PL.MAX_BYTES_PER_DIRECTION = saved
        PL._TABLE_SPAN = saved_span


@given(st.lists(st.tuples(st.integers(0, 10**6), st.booleans(), st.integers(0, 2**32 - 1),
                          st.binary(max_size=30)), max_size=12), st.integers(0, 12),
       st.sampled_from(["tcp", "udp"]), st.booleans())  # fmt: skip
def test_fill_many_equals_fill(parts, split: int, proto: str, marks: bool) -> None:
    """Arbitrary segments (any order, overlaps, holes, the 32-bit wrap), some as parts and the
    rest as a settled block: one compiled reassembly equals ``_reassemble``/``_with_marks``."""

    class _A:
        control_marks = marks

    p = _Pending(parts=parts[:split])
    rest = parts[split:]
    if rest:
        meta = np.array(
            [(t, o, s, len(d), sum(len(x[3]) for x in rest[:k])) for k, (t, o, s, d) in
             enumerate(rest)], np.int64,
        ).reshape(-1, 5)  # fmt: skip
        p.blocks.append((meta, b"".join(d for *_x, d in rest)))
    p.marks = [(t, o, (s + len(d)) & 0xFFFFFFFF, PL.FIN) for t, o, s, d in parts[:2]]
    got = Conversation("C", 1.0, "a", 1, "b", 2, proto)
    want = Conversation("C", 1.0, "a", 1, "b", 2, proto)
    fill_many([got], [_A()], [p])  # type: ignore[list-item]
    fill(want, _A(), _Pending(parts=parts, marks=p.marks))  # type: ignore[arg-type]
    assert got == want


@given(st.sets(st.integers(-(2**40), 2**40)), st.lists(st.integers(-(2**40), 2**40)))
def test_forget_drops_exactly_the_ended_marks(ignored: set[int], ended: list[int]) -> None:
    router = PayloadRouter()
    router.ignored = set(ignored)
    router.forget(np.array(ended, np.int64))
    assert router.ignored == ignored - set(ended)


@given(st.lists(st.integers(0, 2**63 - 1), max_size=50))
def test_seconds_from_columns_equal_python_division(ns: list[int]) -> None:
    """fill_many turns delivery times into seconds in NumPy: the same floats as ``ns / 1e9``."""
    assert (np.array(ns, np.int64) / 1e9).tolist() == [x / 1e9 for x in ns]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 2**40), max_size=30),
    st.sets(st.integers(0, 2**40), max_size=30),
    st.integers(0, 2**40),
    st.sampled_from([0, 1, 5, 1 << 22]),
)
def test_among_equals_isin(values: list[int], keys: set[int], shift: int, span: int) -> None:
    saved = PL._TABLE_SPAN
    PL._TABLE_SPAN = span  # the table (narrow spans) or the sorted lookup
    try:
        # Values and keys near each other (as a batch's connection numbers are) or far apart.
        v = np.array([x % 64 + shift for x in values] + values, np.int64)
        k = {x % 64 + shift for x in keys} | keys
        assert (PL._among(v, iter(k), len(k)) == np.isin(v, list(k))).all()
    finally:
        PL._TABLE_SPAN = saved
