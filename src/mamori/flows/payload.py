"""Route payload of recognised connections to their protocol analyser.

Only connections whose first payload matches an analyser's signature keep their payload; all other
packets never leave the columnar path. Recognition waits for the first payload of both directions
(or a few segments of one), as Zeek's DPD does, so server-first protocols (SMTP, FTP, SSH) are seen.
Like Zeek's signature engine, TCP recognition looks at the in-order *stream* prefix of each direction,
not at single packets, and keeps trying while that prefix is short: a client typing a request one
byte per segment is still recognised once the request line is complete.
TCP segments are kept with their sequence numbers and reassembled in order per direction when the
connection ends: retransmitted bytes are dropped, holes become ``Segment.gap``, and data that arrived
ahead of a hole is delivered when the hole is filled, as Zeek's reassembler delivers it.
An analyser that sets ``control_marks`` also gets the connection's FIN and RST as mark segments
where Zeek's events fall, and whether it was seen without its handshake (``_with_marks``).

Python work is per connection, not per segment, wherever the decision allows: a batch's rows are
grouped by connection, only an undecided connection's first rows are looked at one by one, and a
decided connection's rows become one block (NumPy rows pointing into the batch buffer, copied out
by ``settle`` only if the connection outlives the batch). Ended connections are reassembled
together by one compiled pass (``fill_many``); a delivered segment becomes a Python object only
when its analyser reads it (``Segments``), and its payload is a view, not a copy, for analysers
that set ``views``.
``fill``, ``_reassemble`` and ``_with_marks`` stay the reference the tests hold that pass to.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import getitem
from typing import overload

import numba as nb
import numpy as np

from mamori.flows.analyzers.base import Analyzer, registered
from mamori.flows.conversation import Conversation, Segment
from mamori.flows.prefilter import candidates

FIN, RST = 0x01, 0x04  # TCP flags, and the marks they become (Segment.flags)
PENDING_SEGMENTS = 4  # decide after this many payload segments even if one side stayed silent
DPD_BUFFER = 1024  # Zeek's dpd_buffer_size: stream bytes per direction a signature may look at
MAX_PENDING_SEGMENTS = 16  # give up on an unrecognised TCP connection after this many segments
MAX_BYTES_PER_DIRECTION = 8 * 1024 * 1024  # beyond this, payload is counted as a gap, not kept
# Widest range of connection numbers a batch's rows may span for _payload to select them through
# a table (one byte per number); wider, only the sort selects them.
_TABLE_SPAN = 1 << 22


@dataclass(slots=True)
class _Pending:
    analyzer: Analyzer | None = None
    decided: bool = False
    first: dict[bool, bytes] = field(default_factory=dict)  # UDP: first datagram per direction
    # (ts_ns, is_orig, seq of the first payload byte, data)
    parts: list[tuple[int, bool, int, bytes]] = field(default_factory=list)
    kept: list[int] = field(default_factory=lambda: [0, 0])
    # TCP FIN/RST packets: (ts_ns, is_orig, seq just past the packet's data, FIN or RST)
    marks: list[tuple[int, bool, int, int]] = field(default_factory=list)
    # Once decided, the connection's segments of each batch as one block (see ``parts_of``):
    # rows of (ts_ns, is_orig, seq, length, offset) and the bytes the offsets point into (the
    # batch's buffer until ``PayloadRouter.settle`` copies them out).
    blocks: list[tuple[np.ndarray, bytes | np.ndarray]] = field(default_factory=list)
    # TCP while undecided: each direction's in-order stream prefix (at most DPD_BUFFER bytes)
    # over ``parts[:scanned]``, grown by ``head`` over the parts that arrived since, and the
    # sequence number the next in-order one starts at (-1 before the first, -2 once a segment
    # came out of order: _prefix then reassembles).
    # (allocated on first use: most pending connections never get that far)
    heads: list[bytes] | None = None
    expect: list[int] | None = None
    scanned: int = 0
    # TCP: each direction's first sequence number (where its prefix starts), and the prefixes
    # the signatures last failed on (the same prefixes cannot match on the next try either).
    base: list[int] | None = None
    tried: tuple[tuple[str, int, int], bytes, bytes] | None = None
    # UDP: bit i set when the first datagram of a direction passes the i-th UDP speaker's
    # ``datagrams`` test (see PayloadRouter._payload).
    sig: int = 0

    def grow(self, side: int, k: int) -> None:
        """Take part ``k``, which did not start where its direction's prefix ends.

        A segment that starts inside what the prefix covers is taken exactly as ``_reassemble``
        would order it: the segments it sorts after (by offset, then capture time) deliver up
        to some point; it delivers from there to its end (nothing, if they reached past it: a
        retransmission or keep-alive probe), and whatever lies beyond its end stays as it was.
        Only a hole, or a segment from before the first, leaves the prefix to ``_prefix``.
        """
        assert self.heads is not None and self.expect is not None and self.base is not None
        ts, is_orig, seq, data = self.parts[k]
        want, base = self.expect[side], self.base[side]
        # Offsets from the first segment, unwrapped as _reassemble unwraps them.
        rel = ((seq - base + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        have = (want - base) & 0xFFFFFFFF
        if rel < 0 or rel > have:
            self.expect[side] = -2
            return
        end = rel + len(data)
        # Where the segments sorted before this one have delivered to (they cover every byte
        # before it: the prefix has no hole).
        reach = rel
        for t, o, q, d in self.parts[:k]:
            if o == is_orig:
                a = ((q - base + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
                if (a < rel or (a == rel and t <= ts)) and a + len(d) > reach:
                    reach = a + len(d)
        if reach < DPD_BUFFER and reach < end:
            head = self.heads[side]
            self.heads[side] = (head[:reach] + data[reach - rel :] + head[end:])[:DPD_BUFFER]
        if end > have:
            self.expect[side] = (base + end) & 0xFFFFFFFF

    def prefixes(self) -> tuple[bytes, bytes]:
        """Both directions' prefixes, the originator's first (``head`` of each)."""
        heads, expect = self._scan()
        parts = self.parts
        orig = heads[0] if expect[0] != -2 else _prefix(parts, True, DPD_BUFFER)
        resp = heads[1] if expect[1] != -2 else _prefix(parts, False, DPD_BUFFER)
        return orig, resp

    def head(self, is_orig: bool) -> bytes:
        """One direction's in-order stream prefix, up to its first hole, at most DPD_BUFFER.

        Each part is looked at once, and only when recognition asks (most segments of a pending
        connection arrive before its other direction does).
        """
        heads, expect = self._scan()
        side = 0 if is_orig else 1
        if expect[side] == -2:
            return _prefix(self.parts, is_orig, DPD_BUFFER)
        return heads[side]

    def _scan(self) -> tuple[list[bytes], list[int]]:
        """Grow the prefixes over the parts that arrived since the last look (in place where
        a part starts where its direction's prefix ends, as nearly all do)."""
        parts = self.parts
        heads, expect, base = self.heads, self.expect, self.base
        if heads is None or expect is None or base is None:
            heads, expect, base = self.heads, self.expect, self.base = [b"", b""], [-1, -1], [0, 0]
        k, n = self.scanned, len(parts)
        while k < n:
            _ts, o, seq, data = parts[k]
            side = 0 if o else 1
            want = expect[side]
            if want == seq or want == -1:
                if want == -1:
                    base[side] = seq
                if len(heads[side]) < DPD_BUFFER:
                    heads[side] = (heads[side] + data)[:DPD_BUFFER]
                expect[side] = (seq + len(data)) & 0xFFFFFFFF
            elif want != -2:
                self.grow(side, k)
            k += 1
        self.scanned = n
        return heads, expect


class PayloadRouter:
    """Keeps payload per connection number until the connection ends."""

    def __init__(self) -> None:
        self.analyzers = [a for a in registered().values()]
        # Per transport, the analysers that speak it, in registration order (first match wins).
        self._speakers = {
            proto: tuple(a for a in self.analyzers if proto in a.transports)
            for proto in ("tcp", "udp")
        }
        # UDP speakers' column tests (``datagrams``), if every one has one: then a UDP
        # connection is decided from bits computed over the whole batch, not by ``matches``.
        udp_tests = [getattr(a, "datagrams", None) for a in self._speakers["udp"]]
        self._datagrams = tuple(udp_tests) if None not in udp_tests else None
        # TCP speakers whose ``opens`` gate lets prefixes starting with a given pair of first
        # bytes (-1: none yet) through to ``matches`` (filled as pairs are met; at most 257**2).
        self._gated: dict[tuple[int, int], tuple[Analyzer, ...]] = {}
        self.conns: dict[int, _Pending] = {}
        self.ignored: set[int] = set()
        # Connections given a block in the current batch, and that batch's buffer (see settle).
        self._fresh: list[tuple[int, _Pending]] = []
        self._buf: np.ndarray | None = None

    def route(
        self,
        buf: np.ndarray,
        row_conn: np.ndarray,
        row_orig: np.ndarray,
        ts_ns: np.ndarray,
        cols: dict[str, np.ndarray],
    ) -> None:
        """Take the payload rows of one batch, then the FIN/RST packets of followed connections.

        The batch's buffer must stay unchanged until ``settle`` (or the next ``route``).
        """
        self.settle()
        self._payload(buf, row_conn, row_orig, ts_ns, cols)
        if self.conns:
            self._controls(row_conn, row_orig, ts_ns, cols)

    def _controls(
        self,
        row_conn: np.ndarray,
        row_orig: np.ndarray,
        ts_ns: np.ndarray,
        cols: dict[str, np.ndarray],
    ) -> None:
        """FIN and RST packets of connections being followed (a few per connection)."""
        flags = cols["flags"]
        rows = np.nonzero((row_conn >= 0) & (cols["proto"] == 6) & ((flags & (FIN | RST)) != 0))[0]
        if rows.size == 0:
            return
        rows = rows[_among(row_conn[rows], self.conns.keys(), len(self.conns))]
        if rows.size == 0:
            return
        fl = flags[rows]
        # A FIN comes after the packet's data (and a SYN's own sequence number).
        after = cols["seq"][rows] + ((fl & 0x02) != 0) + cols["pay_len"][rows]
        for c, ts, is_orig, seq, f in zip(
            row_conn[rows].tolist(), ts_ns[rows].tolist(), row_orig[rows].astype(bool).tolist(),
            after.tolist(), fl.tolist(), strict=True,
        ):  # fmt: skip
            p = self.conns.get(c)
            if p is None:
                continue
            if f & RST:
                p.marks.append((ts, is_orig, seq, RST))
            if f & FIN:
                p.marks.append((ts, is_orig, seq, FIN))

    def _payload(
        self,
        buf: np.ndarray,
        row_conn: np.ndarray,
        row_orig: np.ndarray,
        ts_ns: np.ndarray,
        cols: dict[str, np.ndarray],
    ) -> None:
        """The payload rows of one batch (columns select them; one loop step per connection)."""
        if not self.analyzers:
            return
        proto = cols["proto"]
        mask = (row_conn >= 0) & (cols["pay_cap"] > 0) & ((proto == 6) | (proto == 17))
        idx = np.nonzero(mask)[0]
        if idx.size == 0:
            return
        conns = row_conn[idx]
        # Vectorised first look: a connection reaches Python from its first packet that could
        # start a protocol we analyse; connections already being followed keep every packet.
        cand = candidates(
            buf, cols["pay_off"][idx], cols["pay_cap"][idx], proto[idx],
            cols["sport"][idx], cols["dport"][idx], self.analyzers,
        )  # fmt: skip
        # Only the rows of connections with a candidate row in this batch, or followed, can be
        # kept, and only those of connections not given up: selected through a table indexed by
        # connection number (numbers are handed out in order, so a batch's span is narrow), the
        # sort below orders a fifth of the rows (sorting them all cost more than the rest here).
        low = int(conns.min())
        span = int(conns.max()) - low + 1
        if span <= _TABLE_SPAN:
            live = np.zeros(span, np.bool_)
            live[conns[cand] - low] = True
            _mark(live, low, self.conns.keys(), len(self.conns), True)
            _mark(live, low, self.ignored, len(self.ignored), False)
            sub = np.flatnonzero(live[conns - low])
            if sub.size == 0:
                return
            idx, conns, cand = idx[sub], conns[sub], cand[sub]
        # Each connection's rows together, in arrival order (one stable sort): a connection
        # costs one step of the loop below, plus one per segment while it is undecided (at most
        # MAX_PENDING_SEGMENTS: by then it is decided), never one per segment once decided.
        order = np.argsort(conns, kind="stable")
        conns = conns[order]
        cand = cand[order]
        n = conns.shape[0]
        starts_group = np.ones(n, np.bool_)
        starts_group[1:] = conns[1:] != conns[:-1]
        group = np.cumsum(starts_group) - 1
        lead = np.flatnonzero(starts_group)
        # A connection's rows from its first candidate on (later packets of a connection that
        # became a candidate earlier in this batch), every row of one already followed, none
        # of one given up: looked up once per connection, not per row.
        seen = np.cumsum(cand)
        keep = seen - (seen - cand)[lead][group] > 0
        ids = conns[lead]
        if self.conns:
            followed = np.fromiter(self.conns.keys(), np.int64, len(self.conns))
            keep |= np.isin(ids, followed)[group]
        if self.ignored:
            keep &= ~np.isin(ids, np.fromiter(self.ignored, np.int64, len(self.ignored)))[group]
        idx, conns = idx[order[keep]], conns[keep]
        if idx.size == 0:
            return
        n = idx.shape[0]
        cut = np.flatnonzero(conns[1:] != conns[:-1]) + 1
        first = np.concatenate([np.zeros(1, np.int64), cut])
        last = np.concatenate([cut, np.full(1, n, np.int64)])
        # The first rows of each connection as plain lists (iterating NumPy scalars one by one
        # costs more than the work itself): only those can reach the undecided loop.
        size = last - first
        window = np.minimum(size, MAX_PENDING_SEGMENTS)
        head_at = np.zeros(first.shape[0], np.int64)
        np.cumsum(window[:-1], out=head_at[1:])
        heads = idx[np.repeat(first - head_at, window) + np.arange(int(window.sum()))]
        pay_off = cols["pay_off"][heads].astype(np.int64)
        starts = pay_off.tolist()
        ends = (pay_off + cols["pay_cap"][heads]).tolist()
        # Data on a SYN starts one past its sequence number, whether or not the connection is
        # decided yet: both kinds of part are reassembled together, so they must agree.
        seqs = (cols["seq"][heads].astype(np.int64) + ((cols["flags"][heads] & 0x02) != 0)).tolist()
        origs = row_orig[heads].astype(bool).tolist()
        tss = ts_ns[heads].tolist()
        sports = cols["sport"][heads].tolist()
        dports = cols["dport"][heads].tolist()
        udp_rows = proto[heads] == 17
        udp = udp_rows.tolist()
        # Each UDP row's bits: which UDP speakers' tests its datagram passes (only a
        # direction's first datagram counts, see _decide).
        sigs = [0] * heads.shape[0]
        if self._datagrams is not None and udp_rows.any():
            at = np.nonzero(udp_rows)[0]
            rows = heads[at]
            orig_rows = row_orig[rows].astype(bool)
            sp, dp = cols["sport"][rows], cols["dport"][rows]
            op, rp = np.where(orig_rows, sp, dp), np.where(orig_rows, dp, sp)
            bits = np.zeros(at.shape[0], np.int64)
            for i, test in enumerate(self._datagrams):
                bits |= test(buf, pay_off[at], cols["pay_cap"][rows], op, rp).astype(np.int64) << i
            full = np.zeros(heads.shape[0], np.int64)
            full[at] = bits
            sigs = full.tolist()
            # A UDP connection new in this batch whose decision falls inside it is decided here,
            # in columns, as the loop below would decide it; all its rows become one block.
            ids = conns[first]
            eligible = udp_rows[head_at]
            if self.conns:
                known = np.fromiter(self.conns.keys(), np.int64, len(self.conns))
                eligible &= ~np.isin(ids, known)
            size_h = np.clip(buf.shape[0] - pay_off, 0, cols["pay_cap"][heads].astype(np.int64))
            when, how, sent = _udp_decisions(
                head_at, window, row_orig[heads].astype(np.bool_), full, size_h, eligible,
                PENDING_SEGMENTS,
            )  # fmt: skip
            decided_at, decided_bits, sent_before = when.tolist(), how.tolist(), sent.tolist()
        else:
            decided_at = [-1] * first.shape[0]
            decided_bits = sent_before = decided_at
        raw = buf.data
        conns_map = self.conns
        udp_speakers = self._speakers["udp"]
        todo: list[tuple[int, _Pending, int, int]] = []  # (number, connection, rows) of a block
        for c, lo, hi, h, d, bits, before in zip(
            conns[first].tolist(), first.tolist(), last.tolist(), head_at.tolist(),
            decided_at, decided_bits, sent_before, strict=True,
        ):  # fmt: skip
            if d >= 0:
                if bits:
                    a = udp_speakers[(bits & -bits).bit_length() - 1]
                    p = conns_map[c] = _Pending(analyzer=a, decided=True)
                    # The rows up to the decision would have been parts, which do not count
                    # against the per-direction cap: the block's count starts that far below.
                    p.kept = [-before[0], -before[1]]
                    todo.append((c, p, lo, hi))
                else:
                    self.ignored.add(c)
                continue
            p = conns_map.get(c)
            if p is None:
                p = conns_map[c] = _Pending()
            k = lo
            while not p.decided and k < hi:
                j = h + k - lo
                assert k - lo < MAX_PENDING_SEGMENTS  # a connection is decided by then
                data = bytes(raw[starts[j] : ends[j]])
                is_orig = origs[j]
                if is_orig not in p.first:
                    p.first[is_orig] = data
                    p.sig |= sigs[j]
                p.parts.append((tss[j], is_orig, seqs[j], data))
                if len(p.first) == 2 or len(p.parts) >= PENDING_SEGMENTS:
                    sp, dp = sports[j], dports[j]
                    ident = ("udp" if udp[j] else "tcp",) + ((sp, dp) if is_orig else (dp, sp))
                    self._decide(c, p, ident, final=False)
                k += 1
            if k < hi and p.analyzer is not None:  # (None: the connection was given up)
                todo.append((c, p, k, hi))
        if todo:
            self._blocks(buf, idx, row_orig, ts_ns, cols, todo)

    def _blocks(
        self,
        buf: np.ndarray,
        idx: np.ndarray,
        row_orig: np.ndarray,
        ts_ns: np.ndarray,
        cols: dict[str, np.ndarray],
        todo: list[tuple[int, _Pending, int, int]],
    ) -> None:
        """The rows of decided connections as one block per connection and batch.

        A block points into the batch's buffer: a connection that ends with this batch is read
        from it when its conversation is assembled, and only the blocks of connections still
        open when the batch is done are copied out (``settle``).
        """
        lo = np.fromiter((t[2] for t in todo), np.int64, len(todo))
        hi = np.fromiter((t[3] for t in todo), np.int64, len(todo))
        count = hi - lo
        at = np.zeros(len(todo) + 1, np.int64)
        np.cumsum(count, out=at[1:])
        rows = idx[np.repeat(lo - at[:-1], count) + np.arange(int(at[-1]))]
        pay_off = cols["pay_off"][rows].astype(np.int64)
        lens = np.clip(buf.shape[0] - pay_off, 0, cols["pay_cap"][rows].astype(np.int64))
        is_orig = row_orig[rows].astype(bool)
        meta = np.empty((rows.shape[0], 5), np.int64)
        meta[:, 0] = ts_ns[rows]
        meta[:, 1] = is_orig
        meta[:, 2] = cols["seq"][rows].astype(np.int64) + ((cols["flags"][rows] & 0x02) != 0)
        meta[:, 3] = lens
        meta[:, 4] = pay_off
        # Bytes each direction sends in each block (against the per-direction cap).
        sent = np.zeros((rows.shape[0] + 1, 2), np.int64)
        np.cumsum(np.where(is_orig, lens, 0), out=sent[1:, 0])
        np.cumsum(np.where(is_orig, 0, lens), out=sent[1:, 1])
        per = (sent[at[1:]] - sent[at[:-1]]).tolist()
        fresh = self._fresh
        self._buf = buf
        for (c, p, _lo, _hi), a, b, (o, r) in zip(
            todo, at[:-1].tolist(), at[1:].tolist(), per, strict=True
        ):
            kept = p.kept
            if kept[0] + o <= MAX_BYTES_PER_DIRECTION and kept[1] + r <= MAX_BYTES_PER_DIRECTION:
                block = (meta[a:b], buf)
                kept[0] += o
                kept[1] += r
            else:
                block = (_capped(kept, meta[a:b]), buf)
            p.blocks.append(block)
            fresh.append((c, p))

    def settle(self) -> None:
        """Copy out the payload of this batch's blocks whose connections are still open.

        Called once a batch's ended connections have been claimed, before its buffer is reused.
        """
        fresh = self._fresh
        if not fresh:
            return
        buf = self._buf
        conns = self.conns
        open_ = [p for c, p in fresh if conns.get(c) is p]
        fresh.clear()
        self._buf = None
        if not open_:
            return
        metas = [p.blocks[-1][0] for p in open_]
        meta = np.concatenate(metas)
        bounds, arena = _gather(buf, meta[:, 4], meta[:, 3])
        at = np.zeros(len(metas) + 1, np.int64)
        np.cumsum([m.shape[0] for m in metas], out=at[1:])
        meta[:, 4] = bounds[:-1]
        for p, a, b in zip(open_, at[:-1].tolist(), at[1:].tolist(), strict=True):
            block = meta[a:b].copy()
            x, y = int(bounds[a]), int(bounds[b])
            block[:, 4] -= x
            p.blocks[-1] = (block, arena[x:y].tobytes())

    def forget(self, ended: np.ndarray) -> None:
        """Drop the ignore marks of connections that ended (their numbers are never reused)."""
        ignored = self.ignored
        if not ignored or ended.shape[0] == 0:
            return
        ignored.difference_update(ended[_among(ended, ignored, len(ignored))].tolist())

    def _decide(self, conn: int, p: _Pending, ident: tuple[str, int, int], final: bool) -> None:
        """Pick the analyser whose signature matches; unless ``final``, a TCP miss may wait.

        A TCP connection that matches nothing yet stays pending while its stream prefixes are
        shorter than Zeek's DPD buffer (and it has sent few segments): its first message may still
        be arriving in pieces.
        """
        proto, orig_p, resp_p = ident
        if proto == "udp" and self._datagrams is not None:
            # Decided by the batch's column tests: the first speaker whose test a direction's
            # first datagram passed (``p.sig``), as the loop below would pick it.
            if p.sig:
                p.decided = True
                p.analyzer = self._speakers["udp"][(p.sig & -p.sig).bit_length() - 1]
                p.first = {}
                return
            p.decided = True
            self.conns.pop(conn, None)
            self.ignored.add(conn)
            return
        if proto == "tcp":
            orig, resp = p.prefixes()
            if p.tried is not None and p.tried == (ident, orig, resp):
                speakers: tuple[Analyzer, ...] = ()  # nothing matched these prefixes last time
            else:
                key = (orig[0] if orig else -1, resp[0] if resp else -1)
                gated = self._gated.get(key)
                if gated is None:
                    gated = self._gated[key] = tuple(
                        a
                        for a in self._speakers["tcp"]
                        if getattr(a, "opens", None) is None or a.opens(*key)
                    )
                speakers = gated
                p.tried = (ident, orig, resp)
        else:
            orig, resp = p.first.get(True, b""), p.first.get(False, b"")
            speakers = self._speakers.get(proto, ())
        for a in speakers:
            try:
                ok = a.matches(proto, orig_p, resp_p, orig, resp)
            except Exception:  # an analyser bug must not stop the patrol
                ok = False
            if ok:
                p.decided = True
                p.analyzer = a
                p.first = {}
                return
        if (
            not final
            and proto == "tcp"
            and len(p.parts) < MAX_PENDING_SEGMENTS
            and len(orig) < DPD_BUFFER
            and len(resp) < DPD_BUFFER
        ):
            return
        p.decided = True
        self.conns.pop(conn, None)
        self.ignored.add(conn)

    def claim(self, conn: int, ident: tuple[str, int, int]) -> tuple[Analyzer, _Pending] | None:
        """Take an ended connection's analyser and kept payload (None if it was not analysed)."""
        self.ignored.discard(conn)
        p = self.conns.pop(conn, None)
        if p is None:
            return None
        if not p.decided:
            self._decide(conn, p, ident, final=True)
            self.ignored.discard(conn)
            if p.analyzer is None:
                return None
        assert p.analyzer is not None
        return p.analyzer, p

    def finish(self, conv: Conversation, conn: int) -> tuple[Analyzer, Conversation] | None:
        """The analyser and conversation of an ended connection, or None if it was not analysed."""
        got = self.claim(conn, (conv.proto, conv.orig_p, conv.resp_p))
        if got is None:
            return None
        analyzer, p = got
        fill(conv, analyzer, p)
        return analyzer, conv


def _among(values: np.ndarray, keys: Iterable[int], count: int) -> np.ndarray:
    """``np.isin(values, keys)`` for connection numbers. Through a table over the values' span
    when it is narrow enough (as a batch's numbers are: they are handed out in order), a pass
    instead of sorting both; else each value looked up in the sorted keys (``np.isin`` sorts both,
    and ended connections' numbers span too wide a range for its own table)."""
    if values.shape[0] == 0 or count == 0:
        return np.zeros(values.shape[0], np.bool_)
    low = int(values.min())
    span = int(values.max()) - low + 1
    if span > _TABLE_SPAN:
        wanted = np.sort(np.fromiter(keys, np.int64, count))
        at = np.minimum(np.searchsorted(wanted, values), wanted.shape[0] - 1)
        return wanted[at] == values
    table = np.zeros(span, np.bool_)
    _mark(table, low, keys, count, True)
    return table[values - low]


def _mark(table: np.ndarray, low: int, keys: Iterable[int], count: int, value: bool) -> None:
    """``table[k - low] = value`` for each of the keys that falls inside the table."""
    if count:
        at = np.fromiter(keys, np.int64, count) - low
        table[at[(at >= 0) & (at < table.shape[0])]] = value


@nb.njit(cache=True)
def _udp_decisions(
    head_at: np.ndarray,
    window: np.ndarray,
    orig: np.ndarray,
    sig: np.ndarray,
    size: np.ndarray,
    eligible: np.ndarray,
    pending: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each eligible connection (its first rows at ``head_at``, ``window`` of them): the
    row the router's loop would decide it on (both directions seen, or ``pending`` rows;
    -1: not in this batch), the test bits of each direction's first datagram up to it, and the
    bytes each direction sent up to and including it."""
    g = head_at.shape[0]
    when = np.full(g, -1, np.int64)
    how = np.zeros(g, np.int64)
    sent = np.zeros((g, 2), np.int64)
    for c in range(g):
        if not eligible[c]:
            continue
        seen_o = seen_r = False
        bits = 0
        o_bytes = r_bytes = 0
        for q in range(window[c]):
            j = head_at[c] + q
            if orig[j]:
                o_bytes += size[j]
                if not seen_o:
                    seen_o = True
                    bits |= sig[j]
            else:
                r_bytes += size[j]
                if not seen_r:
                    seen_r = True
                    bits |= sig[j]
            if (seen_o and seen_r) or q + 1 >= pending:
                when[c] = q
                how[c] = bits
                sent[c, 0] = o_bytes
                sent[c, 1] = r_bytes
                break
    return when, how, sent


def parts_of(p: _Pending) -> list[tuple[int, bool, int, bytes]]:
    """All kept segments of a connection as (ts_ns, is_orig, seq, data), in arrival order.

    The parts taken while it was undecided come first, then its blocks: a connection gets blocks
    only once decided, so that is the order they arrived in.
    """
    if not p.blocks:
        return p.parts
    out = list(p.parts)
    for meta, data in p.blocks:
        view = memoryview(data)
        for ts, orig, seq, size, at in meta.tolist():
            out.append((ts, orig == 1, seq, bytes(view[at : at + size])))
    return out


def _capped(kept: list[int], meta: np.ndarray) -> np.ndarray:
    """A block past ``MAX_BYTES_PER_DIRECTION``: a side's segments after its cap are kept empty
    (their bytes count as a gap when reassembled); ``kept`` is updated."""
    meta = meta.copy()
    for k, (_ts, orig, _seq, size, _at) in enumerate(meta.tolist()):
        side = 0 if orig else 1
        if kept[side] > MAX_BYTES_PER_DIRECTION:
            meta[k, 3] = 0
        else:
            kept[side] += size
    return meta


@nb.njit(cache=True)
def _gather(buf: np.ndarray, at: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pieces ``buf[at[k]:at[k]+size[k]]`` end to end, and where each starts (and ends)."""
    n = at.shape[0]
    bounds = np.zeros(n + 1, np.int64)
    for k in range(n):
        bounds[k + 1] = bounds[k] + size[k]
    out = np.empty(bounds[n], np.uint8)
    for k in range(n):
        out[bounds[k] : bounds[k + 1]] = buf[at[k] : at[k] + size[k]]
    return bounds, out


def fill(conv: Conversation, analyzer: Analyzer, p: _Pending) -> None:
    """Give ``conv`` the reassembled payload the router kept for it (with marks if asked)."""
    tcp = conv.proto == "tcp"
    parts = parts_of(p)
    if tcp and getattr(analyzer, "control_marks", False):
        conv.marks = True
        conv.segments = _with_marks(parts, p.marks)
    else:
        conv.segments = list(_reassemble(parts, tcp))


def _prefix(parts: list[tuple[int, bool, int, bytes]], side: bool, limit: int) -> bytes:
    """The in-order stream of one direction up to its first hole, at most ``limit`` bytes."""
    # Fast path, the usual case: segments arrived in order, each starting where the last ended.
    # Recognition asks for the prefix after every new segment, so a full reassembly each time
    # cost more than the signatures it feeds.
    mine = [(seq, data) for _ts, o, seq, data in parts if o == side]
    expect = mine[0][0] if mine else 0
    chunks: list[bytes] = []
    for seq, data in mine:
        if seq != expect:
            break
        chunks.append(data)
        expect = (seq + len(data)) & 0xFFFFFFFF
    else:
        return b"".join(chunks)[:limit]
    out = bytearray()
    for seg in _reassemble([x for x in parts if x[1] == side], True):
        if seg.gap or len(out) >= limit:
            break
        out += seg.data
    return bytes(out[:limit])


def _reassemble(parts: list[tuple[int, bool, int, bytes]], tcp: bool) -> Iterator[Segment]:
    """In-order, de-duplicated payload per direction, interleaved by time of delivery.

    Bytes are delivered when everything before them has arrived, as Zeek's TCP reassembler does: a
    segment that overtook an earlier one gets the later arrival time of the segment that filled the
    hole, so analysers see each direction in sequence order *and* interleaved with the other
    direction the way Zeek interleaves them (a ServerHello whose first segment came second must not
    be parsed from its middle).
    """
    if not tcp:
        for ts, is_orig, _seq, data in parts:
            yield Segment(ts / 1e9, is_orig, data)
        return
    out: list[tuple[int, int, Segment]] = []
    for side in (True, False):
        mine = [x for x in parts if x[1] == side]
        if not mine:
            continue
        # Sequence numbers are 32-bit: unwrap relative to the first segment.
        base = mine[0][2]
        # (offset, arrival, arrival order, data): plain tuple order is the stable sort by offset
        # and arrival (the order never ties, so data is never compared), with no key function.
        items = [
            ((seq - base + (1 << 31)) % (1 << 32) - (1 << 31), ts, k, data)
            for k, (ts, _o, seq, data) in enumerate(mine)
        ]
        items.sort()
        nxt = items[0][0]
        delivered = 0  # arrival time of the latest segment delivered so far in this direction
        for rel, ts, _k, data in items:
            end = rel + len(data)
            if end <= nxt:
                continue  # retransmission of delivered bytes
            gap = 0
            if rel > nxt:
                gap = rel - nxt
            elif rel < nxt:
                data = data[nxt - rel :]
            delivered = max(delivered, ts)
            out.append((delivered, len(out), Segment(delivered / 1e9, side, data, gap)))
            nxt = end
    out.sort()  # (time, unique append order, _): never compares the segments
    for _ts, _n, seg in out:
        yield seg


def _with_marks(
    parts: list[tuple[int, bool, int, bytes]], marks: list[tuple[int, bool, int, int]]
) -> list[Segment]:
    """The reassembled conversation with FIN and RST marks where Zeek's events fall (_marked)."""
    begin: dict[bool, int] = {}
    for side in (True, False):
        mine = [x for x in parts if x[1] == side]
        if mine:
            # Where this side's delivered stream starts: its lowest sequence number.
            base = mine[0][2]
            begin[side] = base + min(
                (q - base + (1 << 31)) % (1 << 32) - (1 << 31) for _t, _o, q, _d in mine
            )
    return _marked(list(_reassemble(parts, True)), marks, begin)


def _marked(
    data: list[Segment], marks: list[tuple[int, bool, int, int]], begin: dict[bool, int]
) -> list[Segment]:
    """Reassembled segments with FIN and RST marks added where Zeek's events fall.

    A side's first FIN is delivered once its data up to the FIN has been (after its last data
    segment, at the later of the two times), carrying as ``gap`` the bytes still missing before
    the FIN: Zeek reports that hole as a content gap when the side closes. Each RST is delivered
    at its arrival; data delivered at the same instant comes first. ``begin`` holds where each
    side that sent payload starts its stream.
    """
    timed: list[tuple[float, int, int, Segment]] = [(s.ts, 0, k, s) for k, s in enumerate(data)]
    n = len(timed)
    for side in (True, False):
        fins = [m for m in marks if m[1] == side and m[3] == FIN]
        if fins:
            ts, _o, seq, _f = min(fins)
            when = ts / 1e9
            gap = 0
            if side in begin:
                # Where this side's delivered stream ends (its start plus every byte and hole
                # delivered) and when its last delivery happened.
                end = begin[side]
                for seg in (s for s in data if s.is_orig == side):
                    end += seg.gap + len(seg.data)
                    when = max(when, seg.ts)
                gap = max(0, (seq - end + (1 << 31)) % (1 << 32) - (1 << 31))
            timed.append((when, 1, n, Segment(when, side, b"", gap, FIN)))
            n += 1
        for ts, _o, _seq, _f in (m for m in marks if m[1] == side and m[3] == RST):
            timed.append((ts / 1e9, 1, n, Segment(ts / 1e9, side, b"", 0, RST)))
            n += 1
    timed.sort()  # the third item is unique: segments are never compared
    return [x[3] for x in timed]


@dataclass(slots=True)
class Payload:
    """The kept segments of many connections as columns over one byte string.

    Rows are each connection's segments in arrival order (``first[k]:first[k+1]`` for the k-th),
    as ``parts_of`` lists them; ``data[at[r]:at[r] + size[r]]`` is row r's payload.
    """

    first: np.ndarray  # int64, one more than there are connections
    ts: np.ndarray  # int64 nanoseconds
    orig: np.ndarray  # bool
    seq: np.ndarray  # int64, of the first payload byte
    size: np.ndarray  # int64
    at: np.ndarray  # int64
    data: bytes


def payload_of(pendings: list[_Pending]) -> Payload:
    """The kept segments of ``pendings`` as columns over one byte string."""
    first, ts, orig, seq, size, off, src, sources = _rows(pendings)
    data = b"".join(
        [
            sources[s][a : a + n]
            for s, a, n in zip(src.tolist(), off.tolist(), size.tolist(), strict=True)
        ]
    )
    at = np.zeros(size.shape[0], np.int64)
    if size.shape[0]:
        np.cumsum(size[:-1], out=at[1:])
    return Payload(first, ts, orig, seq, size, at, data)


def _rows(
    pendings: list[_Pending],
) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
    list[bytes | memoryview],
]:  # fmt: skip
    """The kept segments of ``pendings`` as columns, each row's bytes being
    ``sources[src[r]][off[r]:off[r] + size[r]]`` (nothing is copied: a row points into its part's
    bytes, or a view of its settled block's bytes or of the batch buffer)."""
    n = len(pendings)
    parts = [p.parts for p in pendings]
    blocks_of = [p.blocks for p in pendings]
    flat = [x for ps in parts for x in ps]
    pc = np.fromiter(map(len, parts), np.int64, n)
    bc = np.zeros(n, np.int64)
    with_blocks = [k for k, bs in enumerate(blocks_of) if bs]
    if with_blocks:
        bc[with_blocks] = [sum([m.shape[0] for m, _d in blocks_of[k]]) for k in with_blocks]
    first = np.zeros(n + 1, np.int64)
    np.cumsum(pc + bc, out=first[1:])
    rows = int(first[-1])
    ts = np.empty(rows, np.int64)
    orig = np.empty(rows, np.bool_)
    seq = np.empty(rows, np.int64)
    size = np.empty(rows, np.int64)
    off = np.zeros(rows, np.int64)
    src = np.empty(rows, np.int64)
    # A part's own bytes (slicing them whole gives them back, uncopied), then one view per block.
    sources: list[bytes | memoryview] = []
    if flat:
        pts, porig, pseq, pdata = zip(*flat, strict=True)
        pos = _positions(first[:-1], pc)
        ts[pos] = pts
        orig[pos] = porig
        seq[pos] = pseq
        size[pos] = np.fromiter(map(len, pdata), np.int64, len(pdata))
        src[pos] = np.arange(len(pdata), dtype=np.int64)
        sources.extend(pdata)
    blocks = [b for bs in blocks_of for b in bs]
    if blocks:
        meta = np.concatenate([m for m, _d in blocks])
        pos = _positions(first[:-1] + pc, bc)
        ts[pos] = meta[:, 0]
        orig[pos] = meta[:, 1] != 0
        seq[pos] = meta[:, 2]
        size[pos] = meta[:, 3]
        off[pos] = meta[:, 4]
        lens = np.fromiter((m.shape[0] for m, _d in blocks), np.int64, len(blocks))
        src[pos] = np.repeat(np.arange(len(sources), len(sources) + len(blocks)), lens)
        sources.extend([memoryview(d) for _m, d in blocks])
    return first, ts, orig, seq, size, off, src, sources


def _positions(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``starts[k] + 0 .. counts[k] - 1`` for every k, end to end."""
    total = int(counts.sum())
    offs = np.zeros(counts.shape[0], np.int64)
    np.cumsum(counts[:-1], out=offs[1:])
    return np.repeat(starts - offs, counts) + np.arange(total, dtype=np.int64)


@nb.njit(cache=True)
def _deliver(
    first: np.ndarray,
    tcp: np.ndarray,
    ts: np.ndarray,
    orig: np.ndarray,
    seq: np.ndarray,
    size: np.ndarray,
    at: np.ndarray,
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]:
    """``_reassemble`` of every connection at once: its segments as rows of (delivery time,
    side, start, end in the data, gap), in delivery order, with each connection's rows from
    ``out_first[k]``; and, per TCP connection and side, where the delivered stream starts
    (``base + min relative offset``, as ``_with_marks`` needs it; ``has`` says the side sent)."""
    n = first.shape[0] - 1
    rows = first[n]
    o_ts = np.empty(rows, np.int64)
    o_side = np.empty(rows, np.bool_)
    o_a = np.empty(rows, np.int64)
    o_b = np.empty(rows, np.int64)
    o_gap = np.empty(rows, np.int64)
    o_row = np.empty(rows, np.int64)
    out_first = np.zeros(n + 1, np.int64)
    start = np.zeros((n, 2), np.int64)
    has = np.zeros((n, 2), np.bool_)
    w = 0
    for c in range(n):
        lo, hi = first[c], first[c + 1]
        if not tcp[c]:
            for r in range(lo, hi):
                o_ts[w] = ts[r]
                o_side[w] = orig[r]
                o_a[w] = at[r]
                o_b[w] = at[r] + size[r]
                o_gap[w] = 0
                o_row[w] = r
                w += 1
            out_first[c + 1] = w
            continue
        c0 = w
        for s in range(2):
            side = s == 0
            m = 0
            for r in range(lo, hi):
                if orig[r] == side:
                    m += 1
            if m == 0:
                continue
            mine = np.empty(m, np.int64)
            j = 0
            for r in range(lo, hi):
                if orig[r] == side:
                    mine[j] = r
                    j += 1
            base = seq[mine[0]]
            rel = np.empty(m, np.int64)
            t = np.empty(m, np.int64)
            for j in range(m):
                rel[j] = ((seq[mine[j]] - base + (1 << 31)) % (1 << 32)) - (1 << 31)
                t[j] = ts[mine[j]]
            # Order by (offset, arrival time, arrival order): stable sorts, last key first.
            o1 = np.argsort(t, kind="mergesort")
            o2 = np.argsort(rel[o1], kind="mergesort")
            order = o1[o2]
            has[c, s] = True
            start[c, s] = base + rel[order[0]]
            nxt = rel[order[0]]
            delivered = np.int64(0)
            for q in range(m):
                j = order[q]
                r = mine[j]
                end = rel[j] + size[r]
                if end <= nxt:
                    continue
                gap = 0
                trim = 0
                if rel[j] > nxt:
                    gap = rel[j] - nxt
                elif rel[j] < nxt:
                    trim = nxt - rel[j]
                if t[j] > delivered:
                    delivered = t[j]
                o_ts[w] = delivered
                o_side[w] = side
                o_a[w] = at[r] + trim
                o_b[w] = at[r] + size[r]
                o_gap[w] = gap
                o_row[w] = r
                w += 1
                nxt = end
        # Both sides interleaved by delivery time (ties: the order they were appended).
        if w - c0 > 1:
            perm = np.argsort(o_ts[c0:w], kind="mergesort") + c0
            o_ts[c0:w] = o_ts[perm]
            o_side[c0:w] = o_side[perm]
            o_a[c0:w] = o_a[perm]
            o_b[c0:w] = o_b[perm]
            o_gap[c0:w] = o_gap[perm]
            o_row[c0:w] = o_row[perm]
        out_first[c + 1] = w
    return out_first, o_ts[:w], o_side[:w], o_row[:w], o_a[:w], o_b[:w], o_gap[:w], start, has


def fill_many(convs: list[Conversation], analyzers: list[Analyzer], kept: list[_Pending]) -> None:
    """``fill`` for many conversations at once: one compiled reassembly over their columns; each
    conversation's segments are made one by one as its analyser reads them (``Segments``).

    An analyser that sets ``views`` gets each segment's payload as a view of the bytes the router
    kept (the batch's buffer or a settled block), not a copy: most of those bytes are bodies and
    ciphertext that are only counted. The segments (views or not) are read from the batch's
    buffer, so the conversations must be analysed before it is reused (``pipeline.Ingest._emit``
    analyses a batch's conversations before the next batch is read).
    """
    if not convs:
        return
    first, ts, orig, seq, size, off, src, sources = _rows(kept)
    n = len(convs)
    tcp = np.fromiter((c.proto == "tcp" for c in convs), np.bool_, n)
    out_first, t, side, row, a, b, gap, start, has = _deliver(first, tcp, ts, orig, seq, size, off)
    # Times in seconds as Python's ``ns / 1e9`` gives them (int64 to double, then one division).
    cols = ((t / 1e9).tolist(), side.tolist(), src[row].tolist(), a.tolist(), b.tolist(), gap.tolist())  # fmt: skip
    marked = [bool(tcp[k]) and getattr(x, "control_marks", False) for k, x in enumerate(analyzers)]
    ends: list[list[int]] = []
    last: list[list[int]] = []
    if any(marked):
        # Per conversation and side: the delivered stream's length (bytes and holes) and its
        # last delivery time (-1: nothing delivered), for where a FIN mark falls (``_marked``).
        conv_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(out_first))
        sel = np.array(marked)[conv_of]
        key = conv_of[sel] * 2 + ~side[sel]
        sums = np.zeros(2 * n, np.int64)
        np.add.at(sums, key, (gap + b - a)[sel])
        latest = np.full(2 * n, -1, np.int64)
        np.maximum.at(latest, key, t[sel])
        ends = (start + sums.reshape(n, 2)).tolist()
        last = latest.reshape(n, 2).tolist()
    bounds = out_first.tolist()
    sides = has.tolist()
    for k, (conv, analyzer, p) in enumerate(zip(convs, analyzers, kept, strict=True)):
        marks = None
        if marked[k]:
            conv.marks = True
            marks = _marks(p.marks, sides[k], ends[k], last[k])
        conv.segments = Segments(  # type: ignore[assignment]
            cols, sources, bounds[k], bounds[k + 1], getattr(analyzer, "views", False), marks
        )


def _marks(
    marks: list[tuple[int, bool, int, int]], has: list[bool], end: list[int], last: list[int]
) -> list[Segment]:
    """A conversation's FIN and RST mark segments in the order ``_marked`` puts them, given per
    side (0: originator) whether it sent payload, where its delivered stream ends and when it was
    last delivered (-1: never)."""
    timed: list[tuple[float, int, Segment]] = []
    for s, side in enumerate((True, False)):
        fins = [m for m in marks if m[1] == side and m[3] == FIN]
        if fins:
            ts, _o, seq, _f = min(fins)
            when = ts / 1e9
            gap = 0
            if has[s]:
                if last[s] >= 0:
                    when = max(when, last[s] / 1e9)
                gap = max(0, (seq - end[s] + (1 << 31)) % (1 << 32) - (1 << 31))
            timed.append((when, len(timed), Segment(when, side, b"", gap, FIN)))
        for ts, _o, _seq, _f in (m for m in marks if m[1] == side and m[3] == RST):
            timed.append((ts / 1e9, len(timed), Segment(ts / 1e9, side, b"", 0, RST)))
    timed.sort()  # the second item is unique: segments are never compared
    return [x[2] for x in timed]


class Segments(Sequence[Segment]):
    """One conversation's delivered segments, made as they are read.

    The rows ``lo:hi`` of a batch's delivery columns (time in seconds, side, source, start, end,
    gap), each a payload of ``sources[source][start:end]`` (a view if ``views``, else bytes), with
    mark segments (already in order) merged in where ``_marked`` puts them: after the data
    delivered at or before their time. ``rows`` gives them as plain tuples made in C (see
    ``conversation.segment_rows``); iterating gives ``Segment`` objects. Either way an analyser
    reads its segments once and drops each one, so a batch's hundreds of thousands of segments
    never all exist at once, and an analyser that stops early (TLS once established, SSH once
    encrypted) never makes the rest.
    """

    __slots__ = ("_cols", "_hi", "_lo", "_marks", "_sources", "_views")

    def __init__(
        self,
        cols: tuple[list[float], list[bool], list[int], list[int], list[int], list[int]],
        sources: list[bytes | memoryview],
        lo: int,
        hi: int,
        views: bool,
        marks: list[Segment] | None,
    ) -> None:
        self._cols, self._sources, self._lo, self._hi = cols, sources, lo, hi
        self._views, self._marks = views, marks

    def rows(self) -> Iterable[tuple[float, bool, bytes, int, int]]:
        """(ts, is_orig, data, gap, flags) per segment, in delivery order."""
        lo, hi = self._lo, self._hi
        ts, side, src, a, b, gap = (c[lo:hi] for c in self._cols)
        data: Iterator[bytes] = map(getitem, map(self._sources.__getitem__, src), map(slice, a, b))
        if not self._views:
            data = map(bytes, data)
        out = zip(ts, side, data, gap, repeat(0, hi - lo), strict=False)
        marks = self._marks
        if not marks:
            return out
        rows = list(out)
        for k, m in enumerate(marks):
            rows.insert(bisect_right(ts, m.ts) + k, (m.ts, m.is_orig, m.data, m.gap, m.flags))
        return rows

    def __iter__(self) -> Iterator[Segment]:
        for ts, o, d, g, f in self.rows():
            yield Segment(ts, o, d, g, f)

    def __len__(self) -> int:
        return self._hi - self._lo + len(self._marks or ())

    @overload
    def __getitem__(self, k: int) -> Segment: ...
    @overload
    def __getitem__(self, k: slice) -> list[Segment]: ...
    def __getitem__(self, k: int | slice) -> Segment | list[Segment]:
        return list(self)[k]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Segments | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Segments({list(self)!r})"
