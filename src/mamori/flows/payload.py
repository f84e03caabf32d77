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
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from mamori.flows.analyzers.base import Analyzer, registered
from mamori.flows.conversation import Conversation, Segment
from mamori.flows.prefilter import candidates

FIN, RST = 0x01, 0x04  # TCP flags, and the marks they become (Segment.flags)
PENDING_SEGMENTS = 4  # decide after this many payload segments even if one side stayed silent
DPD_BUFFER = 1024  # Zeek's dpd_buffer_size: stream bytes per direction a signature may look at
MAX_PENDING_SEGMENTS = 16  # give up on an unrecognised TCP connection after this many segments
MAX_BYTES_PER_DIRECTION = 8 * 1024 * 1024  # beyond this, payload is counted as a gap, not kept


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
    # TCP while undecided: each direction's in-order stream prefix (at most DPD_BUFFER bytes)
    # over ``parts[:scanned]``, grown by ``head`` over the parts that arrived since, and the
    # sequence number the next in-order one starts at (-1 before the first, -2 once a segment
    # came out of order: _prefix then reassembles).
    # (allocated on first use: most pending connections never get that far)
    heads: list[bytes] | None = None
    expect: list[int] | None = None
    scanned: int = 0

    def grow(self, side: int, seq: int, data: bytes) -> None:
        """Extend one direction's prefix with the next segment that arrived (see ``_prefix``)."""
        assert self.heads is not None and self.expect is not None
        want = self.expect[side]
        if want == -2:
            return
        if want != -1 and seq != want:
            self.expect[side] = -2
            return
        if len(self.heads[side]) < DPD_BUFFER:
            self.heads[side] = (self.heads[side] + data)[:DPD_BUFFER]
        self.expect[side] = (seq + len(data)) & 0xFFFFFFFF

    def head(self, is_orig: bool) -> bytes:
        """One direction's in-order stream prefix, up to its first hole, at most DPD_BUFFER.

        Each part is looked at once, and only when recognition asks (most segments of a pending
        connection arrive before its other direction does).
        """
        parts = self.parts
        if self.heads is None or self.expect is None:
            self.heads, self.expect = [b"", b""], [-1, -1]
        if self.scanned < len(parts):
            for _ts, o, seq, data in parts[self.scanned :]:
                self.grow(0 if o else 1, seq, data)
            self.scanned = len(parts)
        side = 0 if is_orig else 1
        if self.expect[side] == -2:
            return _prefix(self.parts, is_orig, DPD_BUFFER)
        return self.heads[side]


class PayloadRouter:
    """Keeps payload per connection number until the connection ends."""

    def __init__(self) -> None:
        self.analyzers = [a for a in registered().values()]
        # Per transport, the analysers that speak it, in registration order (first match wins).
        self._speakers = {
            proto: tuple(a for a in self.analyzers if proto in a.transports)
            for proto in ("tcp", "udp")
        }
        self.conns: dict[int, _Pending] = {}
        self.ignored: set[int] = set()

    def route(
        self,
        buf: np.ndarray,
        row_conn: np.ndarray,
        row_orig: np.ndarray,
        ts_ns: np.ndarray,
        cols: dict[str, np.ndarray],
    ) -> None:
        """Take the payload rows of one batch, then the FIN/RST packets of followed connections."""
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
        conns = row_conn[rows]
        rows = rows[np.isin(conns, np.fromiter(self.conns.keys(), np.int64, len(self.conns)))]
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
        """The payload rows of one batch (columns select them; one loop per kept segment)."""
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
        keep = cand.copy()
        if self.conns:
            keep |= np.isin(conns, np.fromiter(self.conns.keys(), np.int64, len(self.conns)))
        if cand.any():
            # Later packets of a connection that became a candidate earlier in this batch.
            uniq, inv = np.unique(conns, return_inverse=True)
            first = np.full(uniq.shape[0], np.iinfo(np.int64).max, np.int64)
            pos = np.arange(conns.shape[0], dtype=np.int64)
            np.minimum.at(first, inv[cand], pos[cand])
            keep |= pos >= first[inv]
        if self.ignored:
            keep &= ~np.isin(conns, np.fromiter(self.ignored, np.int64, len(self.ignored)))
        idx, conns = idx[keep], conns[keep]
        if idx.size == 0:
            return
        # Plain lists: iterating NumPy scalars one by one costs more than the work itself.
        pay_off = cols["pay_off"][idx]
        ends = (pay_off + cols["pay_cap"][idx]).tolist()
        starts = pay_off.tolist()
        # Data on a SYN starts one past its sequence number, whether or not the connection is
        # decided yet: both kinds of part are reassembled together, so they must agree.
        seqs = (cols["seq"][idx] + ((cols["flags"][idx] & 0x02) != 0)).tolist()
        origs = row_orig[idx].astype(bool).tolist()
        tss = ts_ns[idx].tolist()
        sports = cols["sport"][idx].tolist()
        dports = cols["dport"][idx].tolist()
        udp = (proto[idx] == 17).tolist()
        raw = buf.data
        ignored = self.ignored
        conns_map = self.conns
        for c, start, end, seq, is_orig, ts, sp, dp, is_udp in zip(
            conns.tolist(), starts, ends, seqs, origs, tss, sports, dports, udp, strict=True
        ):
            if c in ignored:
                continue
            p = conns_map.get(c)
            if p is None:
                p = conns_map[c] = _Pending()
            data = bytes(raw[start:end])
            if not p.decided:
                p.first.setdefault(is_orig, data)
                p.parts.append((ts, is_orig, seq, data))
                if len(p.first) == 2 or len(p.parts) >= PENDING_SEGMENTS:
                    ident = ("udp" if is_udp else "tcp",) + ((sp, dp) if is_orig else (dp, sp))
                    self._decide(c, p, ident, final=False)
                continue
            side = 0 if is_orig else 1
            if p.kept[side] > MAX_BYTES_PER_DIRECTION:
                data = b""
            p.kept[side] += len(data)
            p.parts.append((ts, is_orig, seq, data))

    def forget(self, ended: np.ndarray) -> None:
        """Drop the ignore marks of connections that ended (their numbers are never reused)."""
        if self.ignored:
            marked = np.fromiter(self.ignored, np.int64, len(self.ignored))
            self.ignored.difference_update(marked[np.isin(marked, ended)].tolist())

    def _decide(self, conn: int, p: _Pending, ident: tuple[str, int, int], final: bool) -> None:
        """Pick the analyser whose signature matches; unless ``final``, a TCP miss may wait.

        A TCP connection that matches nothing yet stays pending while its stream prefixes are
        shorter than Zeek's DPD buffer (and it has sent few segments): its first message may still
        be arriving in pieces.
        """
        proto, orig_p, resp_p = ident
        if proto == "tcp":
            orig, resp = p.head(True), p.head(False)
        else:
            orig, resp = p.first.get(True, b""), p.first.get(False, b"")
        for a in self._speakers.get(proto, ()):
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


def fill(conv: Conversation, analyzer: Analyzer, p: _Pending) -> None:
    """Give ``conv`` the reassembled payload the router kept for it (with marks if asked)."""
    tcp = conv.proto == "tcp"
    if tcp and getattr(analyzer, "control_marks", False):
        conv.marks = True
        conv.segments = _with_marks(p.parts, p.marks)
    else:
        conv.segments = list(_reassemble(p.parts, tcp))


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
    """The reassembled conversation with FIN and RST marks where Zeek's events fall.

    A side's first FIN is delivered once its data up to the FIN has been (after its last data
    segment, at the later of the two times), carrying as ``gap`` the bytes still missing before
    the FIN: Zeek reports that hole as a content gap when the side closes. Each RST is delivered
    at its arrival; data delivered at the same instant comes first.
    """
    data = list(_reassemble(parts, True))
    timed: list[tuple[float, int, int, Segment]] = [(s.ts, 0, k, s) for k, s in enumerate(data)]
    n = len(timed)
    for side in (True, False):
        mine = [x for x in parts if x[1] == side]
        fins = [m for m in marks if m[1] == side and m[3] == FIN]
        if fins:
            ts, _o, seq, _f = min(fins)
            when = ts / 1e9
            gap = 0
            if mine:
                # Where this side's delivered stream ends (its lowest sequence number plus every
                # byte and hole _reassemble delivered) and when its last delivery happened.
                base = mine[0][2]
                end = base + min(
                    (q - base + (1 << 31)) % (1 << 32) - (1 << 31) for _t, _o, q, _d in mine
                )
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
