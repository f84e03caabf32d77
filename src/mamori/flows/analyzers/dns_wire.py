"""DNS wire format as Zeek 7.2's DNS analyser reads it: header, questions, answer RRs.

This follows Zeek's parsing *rules*, quirks included, because dns.log is the contract: a record is
only comparable to Zeek's if the same bytes yield the same answers. Notable rules:

* Reads never fail on short data: a 16/32-bit read past the end yields 0 and consumes nothing, and a
  name simply stops at the first bad label (forward compression pointer, label past the end, label
  longer than 63 outside NetBIOS, name over 512 bytes).
* Only the question and answer sections are parsed (Zeek's ``dns_skip_all_auth``/``_addl`` are on),
  and the first malformed RR ends the message; answers already rendered stay.
* Answers are rendered as Zeek's base scripts render them (``TXT <len> <text>``, ``RRSIG <type>
  <signer>``, ``<unknown type=N>`` ...). Some types are parsed without producing an answer string
  (HINFO, CAA, SVCB, NB ...), and a few consume fewer bytes than their RDLENGTH, as Zeek's do (WKS,
  NBSTAT over port 137): later RRs are then misread exactly as Zeek misreads them.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

HEADER_LEN = 12
MAX_QUERIES = 25  # Zeek's dns_max_queries: more questions than this is "not DNS"
_NAME_ROOM = 512  # Zeek's name buffer

# Precompiled big-endian layouts: one C-level unpack replaces several slice + int.from_bytes calls.
_HEADER = struct.Struct(">6H")  # ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
_QTAIL = struct.Struct(">HH")  # QTYPE, QCLASS after a question's name
_RRHEAD = struct.Struct(">HHIH")  # TYPE, CLASS, TTL, RDLENGTH after an RR's owner name
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

# What Zeek's ASCII writer keeps verbatim (printable ASCII but the backslash); everything else is
# written as \xNN. ``bytes.translate`` deleting the kept set answers "anything to escape?" in C,
# and ``str.translate`` with the escape table renders the rare rest without a per-byte generator.
_KEPT = bytes(b for b in range(0x20, 0x7F) if b != 0x5C)
_ESCAPES = {b: f"\\x{b:02x}" for b in range(256) if b not in _KEPT}
_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


def escape(raw: bytes) -> str:
    """Render bytes as Zeek's ASCII log writer does: printable ASCII kept, the rest as ``\\xNN``."""
    if not raw.translate(None, _KEPT):
        return raw.decode("ascii")
    return raw.decode("latin-1").translate(_ESCAPES)


@dataclass(slots=True)
class Answer:
    """One RR of the answer section; ``reply`` is None when Zeek's scripts render nothing for it."""

    name: bytes
    rtype: int
    ttl: int
    reply: bytes | None


@dataclass(slots=True)
class Message:
    """What one DNS message contributed to dns.log."""

    trans_id: int
    qr: bool
    opcode: int
    aa: bool
    tc: bool
    rd: bool
    ra: bool
    z: int
    rcode: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int
    questions: list[tuple[bytes, int, int]] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    confirmed: bool = False  # question and answer sections parsed cleanly


# Pointer-free wire name (length-prefixed labels and the zero label) -> (raw dotted text, rendered
# name, any label over 63). Process-wide, bounded, and exact (see _Cursor.name).
_WIRE_NAMES: dict[bytes, tuple[bytes, bytes, bool]] = {}
_WIRE_NAMES_MAX = 16384


class _Cursor:
    """A position in one message with Zeek's forgiving fixed-width reads.

    ``names`` memoises, per message, the names decoded from a given offset (see :meth:`name`):
    answers almost always point back at the question or at an earlier RR's data, and following
    such a pointer is then one dict lookup instead of a walk over every label again.
    """

    __slots__ = ("data", "end", "names", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        # Slices of the data key the name memo, so they must be hashable (bytes, not bytearray).
        self.data = data if type(data) is bytes else bytes(data)
        self.pos = pos
        self.end = len(data)
        # offset -> (raw dotted text, first byte after the name's own bytes, any label > 63,
        # rendered name)
        self.names: dict[int, tuple[bytes, int, bool, bytes]] = {}

    @property
    def left(self) -> int:
        return self.end - self.pos

    def short(self) -> int:
        pos = self.pos
        if self.end - pos < 2:
            return 0
        self.pos = pos + 2
        return _U16.unpack_from(self.data, pos)[0]

    def long(self) -> int:
        pos = self.pos
        if self.end - pos < 4:
            return 0
        self.pos = pos + 4
        return _U32.unpack_from(self.data, pos)[0]

    def skip(self, n: int) -> None:
        self.pos += n

    def take(self, n: int) -> bytes:
        n = max(0, min(n, self.left))
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def name(self, long_labels: bool = False) -> bytes:
        """A domain name, following backward compression pointers (iteratively, never recursing).

        Most names were seen before, in this message or an earlier one, so two exact memos come
        before the label walk:

        * across messages, :data:`_WIRE_NAMES` maps the wire bytes of a pointer-free name (labels
          up to and including its zero label) to its rendering. A walk reads only those bytes and
          stops on that zero label whatever follows, so the same bytes anywhere decode the same.
          The lookup key is everything up to the first zero byte, found by ``bytes.find`` in C.
        * within the message, ``names`` serves compression pointers (see :meth:`_walk`).
        """
        data, pos = self.data, self.pos
        if pos + 1 < self.end:
            if data[pos] < 0xC0:
                stop = data.find(0, pos) + 1
                if stop:
                    known = _WIRE_NAMES.get(data[pos:stop])
                    if known is not None and (long_labels or not known[2]):
                        self.pos = stop
                        self.names[pos] = (known[0], stop, known[2], known[1])
                        return known[1]
            else:  # a name that is only a pointer, as most answers' owners are: the walk's first
                # step, then its memo hit (same conditions as in _walk, with nothing decoded yet)
                offset = ((data[pos] & 0x3F) << 8) | data[pos + 1]
                seen = self.names.get(offset)
                if (
                    seen is not None
                    and offset < pos
                    and pos >= seen[1]
                    and (long_labels or not seen[2])
                    and len(seen[0]) <= _NAME_ROOM
                ):
                    self.pos = pos + 2
                    self.names[pos] = (seen[0], pos + 2, seen[2], seen[3])
                    return seen[3]
        return self._walk(long_labels)

    def _walk(self, long_labels: bool) -> bytes:
        """Decode label by label, as Zeek does, and remember the result for both memos.

        The per-message memo is exact, not heuristic. A name decoded from ``offset`` that ended
        cleanly on its zero label is stored with ``stop``, the first byte after its own
        (pre-pointer) bytes. A later pointer to ``offset`` from position P walks it again with
        the bound P; every decision of that walk is the same as before when P >= stop (no byte at
        or past P is read), the text fits Zeek's 512-byte buffer behind what is already decoded,
        and labels over 63 were not involved or are allowed here. Only then is the text reused.
        """
        data, pos, end, names = self.data, self.pos, self.end, self.names
        first = pos
        out = bytearray()
        resume = -1  # where the cursor continues after the first pointer
        clean = has_long = False
        while end - pos > 0:
            start = pos
            label = data[pos]
            pos += 1
            if label == 0:
                clean = True
                break
            if end - pos <= 0:
                break
            if label >= 0xC0:
                offset = ((label & 0x3F) << 8) | data[pos]
                pos += 1
                if offset >= start:  # forward (or self) pointer: Zeek stops the name here
                    break
                if resume < 0:
                    resume = pos
                known = names.get(offset)
                if (
                    known is not None
                    and start >= known[1]
                    and (long_labels or not known[2])
                    and len(out) + len(known[0]) <= _NAME_ROOM
                ):
                    out += known[0]
                    clean = True
                    has_long = has_long or known[2]
                    break
                pos, end = offset, start
                continue
            if label > end - pos:
                pos = end
                break
            if (label > 63 and not long_labels) or label >= _NAME_ROOM - len(out):
                break
            if label > 63:
                has_long = True
            out += data[pos : pos + label]
            out.append(0x2E)
            pos += label
        pointer_free = resume < 0
        if pointer_free:
            resume = pos
        self.pos = resume
        rendered = bytes(out[:-1]).lower() if out else b""
        if clean:
            raw = bytes(out)
            names[first] = (raw, resume, has_long, rendered)
            if pointer_free:
                if len(_WIRE_NAMES) >= _WIRE_NAMES_MAX:
                    _WIRE_NAMES.clear()  # crude but bounded; traffic refills the hot names at once
                _WIRE_NAMES[data[first:resume]] = (raw, rendered, has_long)
        return rendered


def _strings(cur: _Cursor, rdlength: int) -> tuple[list[bytes], bool]:
    """TXT/SPF character-strings; ok is False when a string overran RDLENGTH (Zeek stops there)."""
    out: list[bytes] = []
    while rdlength > 0 and cur.left > 0:
        size = cur.data[cur.pos]
        cur.skip(1)
        rdlength -= 1
        if size > rdlength:
            return out, False
        out.append(cur.take(size))
        rdlength -= size
    return out, rdlength == 0


def _ipv6(raw: bytes) -> bytes:
    """Zeek stores IPv4 as v4-mapped IPv6 and prints such AAAA answers as dotted quads."""
    if raw[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, raw[12:]).encode()
    return socket.inet_ntop(socket.AF_INET6, raw).encode()


# An RDATA handler: (cursor at RDATA, rtype, rdlength, owner, port137) -> (parsed cleanly, answer).
_Handler = Callable[[_Cursor, int, int, bytes, bool], tuple[bool, "bytes | None"]]


def _a(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """A: parse_body has checked RDLENGTH <= what is left, so the 4 bytes are all there."""
    if rdlength != 4:
        return False, None
    pos = cur.pos
    cur.pos = pos + 4
    return True, socket.inet_ntop(socket.AF_INET, cur.data[pos : pos + 4]).encode()


def _aaaa(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """AAAA, A6: Zeek reads four 32-bit words whatever RDLENGTH says, each 0 past the end."""
    pos = cur.pos
    words = min(4, (cur.end - pos) // 4)
    cur.pos = pos + 4 * words
    return True, _ipv6(cur.data[pos : pos + 4 * words] + b"\x00" * (16 - 4 * words))


def _domain(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """NS, CNAME, PTR: the name is the answer."""
    return True, cur.name()


def _soa(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """SOA: logged as its MNAME."""
    mname = cur.name()
    cur.name()
    if cur.end - cur.pos < 20:
        return False, None
    cur.pos += 20
    return True, mname


def _mx(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    cur.short()  # preference
    return True, cur.name()


def _srv(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """SRV, or NBSTAT on NetBIOS, which Zeek skips without consuming."""
    if port137:
        return True, None
    for _ in range(3):  # priority, weight, port
        cur.short()
    return True, cur.name()


def _txt(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """TXT, SPF."""
    strs, ok = _strings(cur, rdlength)
    tag = b"TXT" if rtype == 16 else b"SPF"
    return ok, b" ".join(b"%s %d %s" % (tag, len(s), s) for s in strs)


def _wks(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """WKS: an answer with no text, and Zeek consumes nothing."""
    return True, b""


def _opt(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """OPT: Zeek walks options to the end of the message."""
    while cur.left >= 4:
        cur.short()
        olen = cur.short()
        if olen > cur.left:
            break
        cur.skip(olen)
    return cur.left <= 0, None


def _tsig(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """TSIG: parsed field by field."""
    cur.name()
    cur.long()
    cur.short()
    cur.short()
    cur.take(cur.short())
    cur.short()
    cur.short()
    cur.take(cur.short())
    return True, None


def _svcb(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """SVCB, HTTPS: parsed, not logged."""
    if cur.left < 3:
        return False, None
    start = cur.pos
    cur.short()
    cur.name()
    cur.skip(max(0, rdlength - (cur.pos - start)))
    return True, None


def _silent(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """HINFO, NB, TKEY, CAA: skipped, nothing logged."""
    cur.pos += rdlength
    return True, None


def _unknown(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    cur.pos += rdlength
    return True, b"<unknown type=%d>" % rtype


def _rdata(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """Parse one RR's data; returns (parsed cleanly, rendered answer or None)."""
    return _RDATA.get(rtype, _unknown)(cur, rtype, rdlength, owner, port137)


def _rrsig(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """RRSIG, logged as the covered type and the signer (the commonest RR of signed replies)."""
    pos = cur.pos
    if cur.end - pos < 18:
        return False, None
    covered = _U16.unpack_from(cur.data, pos)[0]
    start = cur.pos = pos + 18  # type covered, algorithm, labels, TTL, expiration, inception, tag
    signer = cur.name()
    cur.take(rdlength - ((cur.pos - start) + 18))  # the signature
    return True, b"RRSIG %d %s" % (covered, signer or b"<Root>")


def _dnssec(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """DNSSEC and friends, rendered as Zeek's base DNS script renders them."""
    if rtype == 48:  # DNSKEY
        if cur.left < 4:
            return False, None
        cur.short()
        algo = cur.short() & 0xFF
        cur.take(rdlength - 4)
        return True, b"DNSKEY %d" % algo
    if rtype in (47, 50):  # NSEC, NSEC3
        start = cur.pos
        if rtype == 47:
            nxt = cur.name()
        else:
            if cur.left < 6:
                return False, None
            cur.skip(4)
            for _ in range(2):  # salt, then hash
                n = cur.data[cur.pos] if cur.left > 0 else 0
                cur.skip(1 if cur.left > 0 else 0)
                cur.take(n)
        bitmaps = rdlength - (cur.pos - start)
        while bitmaps > 0 and cur.left > 0:
            bmlen = cur.short() & 0xFF
            if bmlen == 0:
                break
            cur.take(bmlen)
            bitmaps -= 2 + bmlen
        return True, (b"NSEC %s %s" % (owner, nxt)) if rtype == 47 else b"NSEC3"
    if rtype == 51:  # NSEC3PARAM
        if cur.left < 5:
            return False, None
        cur.skip(4)
        n = cur.data[cur.pos]
        cur.skip(1)
        cur.take(n)
        return True, b"NSEC3PARAM"
    if rtype == 43:  # DS
        if cur.left < 4:
            return False, None
        cur.short()
        ad = cur.short()
        cur.take(rdlength - 4)
        return True, b"DS %d %d" % (ad >> 8, ad & 0xFF)
    if rtype == 65534:  # BIND9 private signing-state record
        if cur.left < 5:
            return False, None
        cur.long()
        cur.take(rdlength - 4)
        return True, b"BIND9 signing signal"
    if rtype == 44:  # SSHFP
        if cur.left < 2:
            return False, None
        cur.short()
        return True, b"SSHFP: " + cur.take(rdlength - 2).hex().encode()
    # LOC
    if cur.left < 15:
        return False, None
    vs = cur.short()
    hv = cur.short()
    for _ in range(3):
        cur.long()
    return True, b"LOC:  %d %d %d" % (vs & 0xFF, hv >> 8, hv & 0xFF)


# One dict lookup instead of a chain of comparisons (A is first in the chain, RRSIG eleventh).
_RDATA: dict[int, _Handler] = {
    1: _a,
    28: _aaaa,
    38: _aaaa,
    2: _domain,
    5: _domain,
    12: _domain,
    6: _soa,
    15: _mx,
    33: _srv,
    16: _txt,
    99: _txt,
    11: _wks,
    41: _opt,
    250: _tsig,
    46: _rrsig,
    **dict.fromkeys((48, 47, 50, 51, 43, 65534, 44, 29), _dnssec),
    64: _svcb,
    65: _svcb,
    **dict.fromkeys((13, 32, 249, 257), _silent),
}


def parse_header(data: bytes) -> Message | None:
    """The fixed 12-byte header, or None when the message is shorter than that."""
    if len(data) < HEADER_LEN:
        return None
    tid, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    return Message(
        tid,
        bool(flags & 0x8000),  # QR
        (flags >> 11) & 0xF,  # opcode
        bool(flags & 0x0400),  # AA
        bool(flags & 0x0200),  # TC
        bool(flags & 0x0100),  # RD
        bool(flags & 0x0080),  # RA
        (flags >> 4) & 0x7,  # Z
        flags & 0xF,  # rcode
        qd,
        an,
        ns,
        ar,
    )


def parse_body(msg: Message, data: bytes, port137: bool) -> None:
    """Fill in questions and answers from the message body, stopping where Zeek stops.

    The fixed-width fields behind each name are read with one ``unpack_from`` when they are all
    there; only a message truncated inside an RR header takes the field-by-field reads, whose
    "0 past the end, consume nothing" rule then decides what Zeek saw.
    """
    if msg.qdcount > MAX_QUERIES:
        return
    cur = _Cursor(data, HEADER_LEN)
    end = cur.end
    name = cur.name
    questions = msg.questions
    for _ in range(msg.qdcount):
        qname = name(port137)
        pos = cur.pos
        if end - pos < 4:
            return
        qtype, qclass = _QTAIL.unpack_from(data, pos)
        cur.pos = pos + 4
        questions.append((qname, qtype, qclass))
    answers = msg.answers
    for _ in range(msg.ancount):
        owner = name(port137)
        pos = cur.pos
        left = end - pos
        if left < 4:
            return
        if left >= 10:
            rtype, _rclass, ttl, rdlength = _RRHEAD.unpack_from(data, pos)
            cur.pos = pos = pos + 10
            left -= 10
        else:  # truncated RR header: Zeek's forgiving reads, field by field
            rtype = cur.short()
            cur.short()  # class
            ttl = cur.long()
            rdlength = cur.short()
            left = end - cur.pos
        if rdlength > left or (rdlength == 0 and left > 0):
            return
        ok, reply = _RDATA.get(rtype, _unknown)(cur, rtype, rdlength, owner, port137)
        answers.append(Answer(owner, rtype, ttl, reply))
        if not ok:
            return
    msg.confirmed = True
