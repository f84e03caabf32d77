"""DNS analyser: dns.log rows from one UDP or TCP conversation, paired the way Zeek 7.2 pairs them.

Pairing mirrors Zeek's ``base/protocols/dns/main.zeek``: a query waits in a per-transaction-ID queue
until a response with the same ID arrives (and vice versa), a row is written once both halves were
seen, and whatever is still unmatched when the connection ends is written alone (unanswered queries,
unsolicited responses). Field provenance matters as much as pairing, so it is kept exactly:
RD/TC/Z/qtype/qclass come only from the query; AA/RA/rtt only from a response that carries answer
RRs; a response-only row takes its ``query`` from the first answer's owner name, not the question.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from collections import deque
from typing import ClassVar

import numba as nb
import numpy as np
import pyarrow as pa

from mamori.flows.analyzers import dns_wire
from mamori.flows.analyzers.base import Analysis, register
from mamori.flows.analyzers.dns_names import qclass_name, qtype_name, rcode_name
from mamori.flows.conversation import Conversation
from mamori.schema.dns import SCHEMA

SESSION_TIMEOUT = 10.0  # Zeek's dns_session_timeout: an idle UDP DNS "connection" ends after this
MAX_PENDING_MSGS = 50  # DNS::max_pending_msgs
MAX_PENDING_IDS = 50  # DNS::max_pending_query_ids
_QTAIL = struct.Struct(">HH")  # a question's QTYPE, QCLASS
_HEADER = struct.Struct(">6H")  # ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT

Info = dict[str, object]


# A fresh row before any message touched it. Key order is the row's column order; the two private
# flags come last so that _rows can drop them without disturbing it.
_BLANK_INFO: Info = {
    "ts": 0.0,
    "trans_id": 0,
    "rtt": None,
    "query": None,
    "qclass": None,
    "qclass_name": None,
    "qtype": None,
    "qtype_name": None,
    "rcode": None,
    "rcode_name": None,
    "AA": False,
    "TC": False,
    "RD": False,
    "RA": False,
    "Z": 0,
    "answers": None,
    "TTLs": None,
    "rejected": False,
    "_saw_query": False,
    "_saw_reply": False,
}


def _new_info(ts: float, trans_id: int) -> Info:
    """A copy of the blank row (``dict.copy`` is one C call; every value in it is immutable)."""
    info = _BLANK_INFO.copy()
    info["ts"] = ts
    info["trans_id"] = trans_id
    return info


def _netbios_name(name: bytes) -> bytes:
    """Zeek's ``decode_netbios_name``: the 32-letter first-level encoding, or b"" if not one.

    A pure function of the name, and a few names repeat over thousands of NetBIOS queries: each
    distinct one is decoded once (``_decode_netbios``)."""
    return _decode_netbios(bytes(name))


@functools.lru_cache(maxsize=4096)
def _decode_netbios(name: bytes) -> bytes:
    """``_netbios_name`` itself, uncached."""
    if len(name) != 32:
        return b""
    out = bytearray()
    for i in range(16):
        c0, c1 = name[2 * i : 2 * i + 1].upper(), name[2 * i + 1 : 2 * i + 2].upper()
        if not (b"A" <= c0 <= b"P" and b"A" <= c1 <= b"P"):
            return b""
        ch = ((c0[0] - 65) << 4) + (c1[0] - 65)
        if not (32 <= ch <= 126 or ch < 3):  # C isalnum/ispunct/space, or Zeek's \x01\x02 allowance
            break
        out.append(ch)
    del out[15:]
    return bytes(out).rstrip(b" \x00")


class _Session:
    """The per-connection state of Zeek's DNS script (``DNS::State`` plus ``c$dns``)."""

    def __init__(self, port137: bool) -> None:
        self.port137 = port137
        self.pending_query: Info | None = None
        self.pending_queries: dict[int, deque[Info]] = {}
        self.pending_replies: dict[int, deque[Info]] = {}
        self.current: Info | None = None
        self.logged: list[Info] = []

    def _enqueue(self, table: dict[int, deque[Info]], tid: int, info: Info) -> None:
        if tid not in table:
            if len(table) > MAX_PENDING_IDS:
                for q in table.values():
                    self.logged.extend(q)
                table.clear()
            table[tid] = deque()
        elif len(table[tid]) > MAX_PENDING_MSGS:
            self.logged.extend(table[tid])
            table[tid] = deque()
        table[tid].append(info)

    @staticmethod
    def _pop(table: dict[int, deque[Info]], tid: int) -> Info:
        info = table[tid].popleft()
        if not table[tid]:
            del table[tid]
        return info

    def set_session(self, ts: float, msg: dns_wire.Message) -> Info:
        """Find or create the row this message belongs to (Zeek's ``DNS::set_session``)."""
        tid = msg.trans_id
        if not msg.qr:
            if self.pending_replies.get(tid):
                info = self._pop(self.pending_replies, tid)
            else:
                info = _new_info(ts, tid)
                if self.pending_query is None:
                    self.pending_query = info
                else:
                    self._enqueue(self.pending_queries, tid, info)
        elif self.pending_query is not None and self.pending_query["trans_id"] == tid:
            info = self.pending_query
            self.pending_query = None
            if self.pending_queries.get(tid):
                self.pending_query = self._pop(self.pending_queries, tid)
            else:
                other = next((t for t, q in self.pending_queries.items() if q), None)
                if other is not None:
                    self.pending_query = self._pop(self.pending_queries, other)
        elif self.pending_queries.get(tid):
            info = self._pop(self.pending_queries, tid)
        else:
            info = _new_info(ts, tid)
            self._enqueue(self.pending_replies, tid, info)
        if msg.qr:
            info["rcode"] = msg.rcode
            info["rcode_name"] = rcode_name(msg.rcode)
            if msg.rcode != 0 and msg.qdcount == 0:
                info["rejected"] = True
        return info

    def message(self, ts: float, msg: dns_wire.Message) -> None:
        """Apply one parsed message, as Zeek's events for it would, in their order."""
        if msg.opcode == 0:
            self.current = self.set_session(ts, msg)
        info = self.current
        if info is None:
            return  # Zeek's handlers would fail on a missing c$dns: nothing is recorded
        for name, qtype, qclass in msg.questions:
            if msg.opcode != 0:
                continue
            if not msg.qr:
                self._request(info, msg, name, qtype, qclass)
            elif msg.ancount == 0 and msg.nscount == 0 and msg.arcount == 0:
                info["rejected"] = True
        if msg.qr and msg.opcode == 0:
            for ans in msg.answers:
                if ans.reply is not None:
                    self._reply(info, ts, msg, ans)
        if msg.qr:
            info["_saw_reply"] = True
        else:
            info["_saw_query"] = True
        if info["_saw_reply"] and info["_saw_query"]:
            self.logged.append(info)
            self.current = None

    def _request(
        self, info: Info, msg: dns_wire.Message, name: bytes, qtype: int, qclass: int
    ) -> None:
        info.update(RD=msg.rd, TC=msg.tc, Z=msg.z, qclass=qclass, qtype=qtype)
        info["qclass_name"] = qclass_name(qclass)
        info["qtype_name"] = qtype_name(qtype)
        if self.port137:
            decoded = _netbios_name(name)
            if decoded:
                name = decoded
            if info["qtype_name"] == "SRV":
                info["qtype_name"] = "NBSTAT"
        info["query"] = dns_wire.escape(name)

    @staticmethod
    def _reply(info: Info, ts: float, msg: dns_wire.Message, ans: dns_wire.Answer) -> None:
        if info["query"] is None:
            info["query"] = dns_wire.escape(ans.name)
        info["AA"], info["RA"] = msg.aa, msg.ra
        if info["rtt"] is None:
            rtt = ts - float(info["ts"])  # type: ignore[arg-type]
            info["rtt"] = rtt if rtt != 0 else None
        if ans.reply:
            if info["answers"] is None:
                info["answers"], info["TTLs"] = [], []
            info["answers"].append(dns_wire.escape(ans.reply))  # type: ignore[union-attr]
            info["TTLs"].append(float(ans.ttl))  # type: ignore[union-attr]

    def finish(self) -> list[Info]:
        """Connection end: unmatched queries and replies are written as they are."""
        if self.pending_query is not None:
            self.logged.append(self.pending_query)
        for table in (self.pending_queries, self.pending_replies):
            for q in table.values():
                self.logged.extend(q)
        return self.logged


def _messages(conv: Conversation) -> list[tuple[float, bool, bytes]]:
    """(ts, is_orig, message) in delivery order; TCP messages are de-framed from 2-byte lengths."""
    if conv.proto != "tcp":
        return [(s.ts, s.is_orig, s.data) for s in conv.segments]
    out: list[tuple[float, bool, bytes]] = []
    bufs = {True: b"", False: b""}
    for seg in conv.segments:
        buf = bufs[seg.is_orig] + seg.data
        while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
            size = int.from_bytes(buf[:2], "big")
            out.append((seg.ts, seg.is_orig, buf[2 : 2 + size]))
            buf = buf[2 + size :]
        bufs[seg.is_orig] = buf
    return out


@functools.lru_cache(maxsize=4096)
def _is_multicast(addr: str) -> bool:
    """Remembered per address: the same few resolvers and multicast groups answer again and
    again."""
    try:
        return ipaddress.ip_address(addr).is_multicast
    except ValueError:
        return False


class DnsAnalyzer:
    """Zeek-faithful DNS: UDP datagrams and TCP length-framed messages."""

    service: ClassVar[str] = "dns"
    table: ClassVar[str] = "dns"
    schema: ClassVar[pa.Schema] = SCHEMA
    transports: ClassVar[tuple[str, ...]] = ("udp", "tcp")
    # Zeek attaches its DNS analyser by port (there is no DNS DPD signature).
    ports: ClassVar[tuple[tuple[str, int], ...]] = (
        ("udp", 53), ("udp", 137), ("udp", 5353), ("udp", 5355), ("tcp", 53),
    )  # fmt: skip

    @staticmethod
    def opens(orig: int, resp: int) -> bool:
        """The router's gate before ``matches``: can it hold for prefixes whose first bytes are
        these (-1: that direction sent nothing yet)?
        Any message: DNS has no signature bytes."""
        return orig >= 0 or resp >= 0

    def matches(self, proto: str, orig_p: int, resp_p: int, orig: bytes, resp: bytes) -> bool:
        """A plausible header whose first question parses completely (either direction)."""
        netbios = 137 in (orig_p, resp_p)
        # A TCP message starts after its 2-byte length (a shorter stream is too short anyway).
        skip = 2 if proto == "tcp" else 0
        for data in (orig, resp):
            # Most payload tried here is not DNS: the question count rules it out before slicing.
            if len(data) < dns_wire.HEADER_LEN + skip:
                continue
            if _HEADER.unpack_from(data, skip)[2] > dns_wire.MAX_QUERIES:
                continue
            try:
                if _plausible(data[skip:] if skip else data, netbios):
                    return True
            except Exception:  # a signature must never take the tracker down
                continue
        return False

    @staticmethod
    def datagrams(
        buf: np.ndarray, off: np.ndarray, size: np.ndarray, orig_p: np.ndarray, resp_p: np.ndarray
    ) -> np.ndarray:
        """``matches`` over many UDP datagrams at once (``buf[off[k]:off[k] + size[k]]``).

        For UDP, ``matches`` is true exactly when the first datagram of either direction passes
        this test: the router decides most DNS flows from this column, never calling ``matches``.
        """
        return _plausible_many(buf, off, size, (orig_p == 137) | (resp_p == 137))

    def analyze(self, conv: Conversation) -> Analysis:
        try:
            return self._analyze(conv)
        except Exception:  # defensive: malformed payload must never escape as an exception
            return Analysis(False, [])

    def _analyze(self, conv: Conversation) -> Analysis:
        port137 = conv.resp_p == 137
        netbios = 137 in (conv.orig_p, conv.resp_p)
        records: list[dict[str, object]] = []
        confirmed = False
        session: _Session | None = None
        flipped, first, last_ts, next_timer = False, True, 0.0, 0.0
        udp = conv.proto != "tcp"
        for ts, is_orig, data in _messages(conv):
            if udp and session is not None:
                while next_timer <= ts:  # Zeek's DNS expiry timer over UDP
                    if next_timer - last_ts >= SESSION_TIMEOUT - 1.0:
                        records += self._rows(conv, session.finish(), flipped)
                        session = None
                        break
                    next_timer += SESSION_TIMEOUT
            if session is None:
                session, flipped, first = _Session(port137), False, True
                next_timer = ts + SESSION_TIMEOUT
            last_ts = ts
            msg = dns_wire.parse_header(data)
            if msg is None or (msg.opcode != 0 and not netbios):
                continue
            if first and msg.qr and is_orig and not _is_multicast(conv.resp_h):
                flipped = True
            first = False
            dns_wire.parse_body(msg, data, port137)
            confirmed = confirmed or msg.confirmed
            session.message(ts, msg)
        if session is not None:
            records += self._rows(conv, session.finish(), flipped)
        return Analysis(confirmed, records)

    @staticmethod
    def _rows(conv: Conversation, infos: list[Info], flipped: bool) -> list[dict[str, object]]:
        ids = conv.id_fields()
        if flipped:
            ids.update(
                orig_h=conv.resp_h, orig_p=conv.resp_p, resp_h=conv.orig_h, resp_p=conv.orig_p
            )
        rows = []
        for info in infos:
            row: dict[str, object] = {"ts": info["ts"], **ids, "proto": conv.proto}
            row.update(info)  # "ts" keeps its first place; the rest follow in _BLANK_INFO's order
            del row["_saw_query"], row["_saw_reply"]
            rows.append(row)
        return rows


def _plausible(data: bytes, netbios: bool) -> bool:
    """Header counts in range and the first question (or, for announcements, answer) parses.

    The header is unpacked in place (no Message): this runs once per UDP flow on port 53.
    """
    if len(data) < dns_wire.HEADER_LEN:
        return False
    _tid, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    if qd > dns_wire.MAX_QUERIES:
        return False
    opcode = (flags >> 11) & 0xF
    if opcode not in (0, 1, 2, 4, 5) or (opcode != 0 and not netbios):
        return False
    qr = flags & 0x8000
    if an + ns + ar > 512 or (not qr and an > 16):
        return False
    if qd == 0 and not (qr and an > 0):
        return False  # only responses (mDNS announcements) may come without a question
    cur = dns_wire._Cursor(data, dns_wire.HEADER_LEN)
    cur.name(long_labels=netbios)
    if cur.end - cur.pos < 4 or cur.pos == dns_wire.HEADER_LEN:
        return False
    rtype, rclass = _QTAIL.unpack_from(data, cur.pos)
    return rtype != 0 and (rclass & 0x7FFF) in (1, 3, 4, 254, 255)


@nb.njit(cache=True)
def _plausible_at(data: np.ndarray, start: int, end: int, netbios: bool) -> bool:
    """``_plausible`` of ``data[start:end]``, compiled: the same header checks, and the first
    name walked as ``dns_wire._Cursor._walk`` walks it (only where it ends matters here)."""
    if end - start < 12:
        return False
    flags = (np.int64(data[start + 2]) << 8) | data[start + 3]
    qd = (np.int64(data[start + 4]) << 8) | data[start + 5]
    an = (np.int64(data[start + 6]) << 8) | data[start + 7]
    ns = (np.int64(data[start + 8]) << 8) | data[start + 9]
    ar = (np.int64(data[start + 10]) << 8) | data[start + 11]
    if qd > 25:  # dns_wire.MAX_QUERIES
        return False
    opcode = (flags >> 11) & 0xF
    if not (opcode == 0 or opcode == 1 or opcode == 2 or opcode == 4 or opcode == 5):
        return False
    if opcode != 0 and not netbios:
        return False
    qr = flags & 0x8000
    if an + ns + ar > 512 or (qr == 0 and an > 16):
        return False
    if qd == 0 and not (qr != 0 and an > 0):
        return False
    # The name, relative to the message (pointers are offsets into it).
    pos = 12
    stop = end - start
    resume = -1
    size = 0  # bytes of rendered text so far (labels and their dots)
    while stop - pos > 0:
        begin = pos
        label = np.int64(data[start + pos])
        pos += 1
        if label == 0:
            break
        if stop - pos <= 0:
            break
        if label >= 0xC0:
            offset = ((label & 0x3F) << 8) | data[start + pos]
            pos += 1
            if offset >= begin:
                break
            if resume < 0:
                resume = pos
            # (the per-message memo is empty while the first name is walked)
            pos, stop = offset, begin
            continue
        if label > stop - pos:
            pos = stop
            break
        if (label > 63 and not netbios) or label >= 512 - size:  # dns_wire._NAME_ROOM
            break
        size += label + 1
        pos += label
    if resume < 0:
        resume = pos
    if (end - start) - resume < 4 or resume == 12:
        return False
    rtype = (np.int64(data[start + resume]) << 8) | data[start + resume + 1]
    rclass = ((np.int64(data[start + resume + 2]) << 8) | data[start + resume + 3]) & 0x7FFF
    return rtype != 0 and (
        rclass == 1 or rclass == 3 or rclass == 4 or rclass == 254 or rclass == 255
    )


@nb.njit(cache=True)
def _plausible_many(
    buf: np.ndarray, off: np.ndarray, size: np.ndarray, netbios: np.ndarray
) -> np.ndarray:
    """``_plausible_at`` of every ``buf[off[k]:off[k] + size[k]]``."""
    n = off.shape[0]
    out = np.zeros(n, np.bool_)
    for k in range(n):
        a = np.int64(off[k])
        b = min(a + np.int64(size[k]), buf.shape[0])
        if b > a:
            out[k] = _plausible_at(buf, a, b, netbios[k])
    return out


register(DnsAnalyzer())
