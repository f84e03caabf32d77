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
from dataclasses import dataclass, field

HEADER_LEN = 12
MAX_QUERIES = 25  # Zeek's dns_max_queries: more questions than this is "not DNS"
_NAME_ROOM = 512  # Zeek's name buffer


def escape(raw: bytes) -> str:
    """Render bytes as Zeek's ASCII log writer does: printable ASCII kept, the rest as ``\\xNN``."""
    if all(0x20 <= b < 0x7F and b != 0x5C for b in raw):
        return raw.decode("ascii")
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)


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


class _Cursor:
    """A position in one message with Zeek's forgiving fixed-width reads."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data)

    @property
    def left(self) -> int:
        return self.end - self.pos

    def short(self) -> int:
        if self.left < 2:
            return 0
        self.pos += 2
        return int.from_bytes(self.data[self.pos - 2 : self.pos], "big")

    def long(self) -> int:
        if self.left < 4:
            return 0
        self.pos += 4
        return int.from_bytes(self.data[self.pos - 4 : self.pos], "big")

    def skip(self, n: int) -> None:
        self.pos += n

    def take(self, n: int) -> bytes:
        n = max(0, min(n, self.left))
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def name(self, long_labels: bool = False) -> bytes:
        """A domain name, following backward compression pointers (iteratively, never recursing)."""
        data, pos, end = self.data, self.pos, self.end
        out = bytearray()
        resume: int | None = None
        while end - pos > 0:
            start = pos
            label = data[pos]
            pos += 1
            if end - pos <= 0 or label == 0:
                break
            if label & 0xC0 == 0xC0:
                offset = ((label & 0x3F) << 8) | data[pos]
                pos += 1
                if offset >= start:  # forward (or self) pointer: Zeek stops the name here
                    break
                if resume is None:
                    resume = pos
                pos, end = offset, start
                continue
            if label > end - pos:
                pos = end
                break
            if (label > 63 and not long_labels) or label >= _NAME_ROOM - len(out):
                break
            out += data[pos : pos + label]
            out.append(0x2E)
            pos += label
        self.pos = pos if resume is None else resume
        if len(out) >= 2 and out[-1] == 0x2E:
            del out[-1]
        return bytes(out).lower()


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
    if raw[:12] == b"\x00" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, raw[12:]).encode()
    return socket.inet_ntop(socket.AF_INET6, raw).encode()


def _rdata(
    cur: _Cursor, rtype: int, rdlength: int, owner: bytes, port137: bool
) -> tuple[bool, bytes | None]:
    """Parse one RR's data; returns (parsed cleanly, rendered answer or None)."""
    if rtype == 1:  # A
        if rdlength != 4:
            return False, None
        return True, socket.inet_ntop(socket.AF_INET, cur.long().to_bytes(4, "big")).encode()
    if rtype in (28, 38):  # AAAA, A6: Zeek reads 16 bytes whatever RDLENGTH says
        return True, _ipv6(b"".join(cur.long().to_bytes(4, "big") for _ in range(4)))
    if rtype in (2, 5, 12):  # NS, CNAME, PTR
        return True, cur.name()
    if rtype == 6:  # SOA: logged as its MNAME
        mname = cur.name()
        cur.name()
        if cur.left < 20:
            return False, None
        cur.skip(20)
        return True, mname
    if rtype == 15:  # MX
        cur.short()
        return True, cur.name()
    if rtype == 33:  # SRV, or NBSTAT on NetBIOS, which Zeek skips without consuming
        if port137:
            return True, None
        for _ in range(3):  # priority, weight, port
            cur.short()
        return True, cur.name()
    if rtype in (16, 99):  # TXT, SPF
        strs, ok = _strings(cur, rdlength)
        tag = b"TXT" if rtype == 16 else b"SPF"
        return ok, b" ".join(b"%s %d %s" % (tag, len(s), s) for s in strs)
    if rtype == 11:  # WKS: an answer with no text, and Zeek consumes nothing
        return True, b""
    if rtype == 41:  # OPT: Zeek walks options to the end of the message
        while cur.left >= 4:
            cur.short()
            olen = cur.short()
            if olen > cur.left:
                break
            cur.skip(olen)
        return cur.left <= 0, None
    if rtype == 250:  # TSIG: parsed field by field
        cur.name()
        cur.long()
        cur.short()
        cur.short()
        cur.take(cur.short())
        cur.short()
        cur.short()
        cur.take(cur.short())
        return True, None
    if rtype in (46, 48, 47, 50, 51, 43, 65534, 44, 29):
        return _dnssec(cur, rtype, rdlength, owner)
    if rtype in (64, 65):  # SVCB, HTTPS: parsed, not logged
        if cur.left < 3:
            return False, None
        start = cur.pos
        cur.short()
        cur.name()
        cur.skip(max(0, rdlength - (cur.pos - start)))
        return True, None
    cur.skip(rdlength)
    if rtype in (13, 32, 249, 257):  # HINFO, NB, TKEY, CAA: skipped, nothing logged
        return True, None
    return True, b"<unknown type=%d>" % rtype


def _dnssec(cur: _Cursor, rtype: int, rdlength: int, owner: bytes) -> tuple[bool, bytes | None]:
    """DNSSEC and friends, rendered as Zeek's base DNS script renders them."""
    if rtype == 46:  # RRSIG
        if cur.left < 18:
            return False, None
        covered = cur.short()
        cur.skip(16)
        start = cur.pos
        signer = cur.name()
        cur.take(rdlength - ((cur.pos - start) + 18))
        return True, b"RRSIG %d %s" % (covered, signer or b"<Root>")
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


def parse_header(data: bytes) -> Message | None:
    """The fixed 12-byte header, or None when the message is shorter than that."""
    if len(data) < HEADER_LEN:
        return None
    flags = int.from_bytes(data[2:4], "big")
    counts = [int.from_bytes(data[i : i + 2], "big") for i in range(4, 12, 2)]
    return Message(
        trans_id=int.from_bytes(data[0:2], "big"),
        qr=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0xF,
        aa=bool(flags & 0x0400),
        tc=bool(flags & 0x0200),
        rd=bool(flags & 0x0100),
        ra=bool(flags & 0x0080),
        z=(flags >> 4) & 0x7,
        rcode=flags & 0xF,
        qdcount=counts[0],
        ancount=counts[1],
        nscount=counts[2],
        arcount=counts[3],
    )


def parse_body(msg: Message, data: bytes, port137: bool) -> None:
    """Fill in questions and answers from the message body, stopping where Zeek stops."""
    if msg.qdcount > MAX_QUERIES:
        return
    cur = _Cursor(data, HEADER_LEN)
    for _ in range(msg.qdcount):
        name = cur.name(long_labels=port137)
        if cur.left < 4:
            return
        msg.questions.append((name, cur.short(), cur.short()))
    for _ in range(msg.ancount):
        owner = cur.name(long_labels=port137)
        if cur.left < 4:
            return
        rtype = cur.short()
        cur.short()  # class
        ttl = cur.long()
        rdlength = cur.short()
        if rdlength > cur.left or (rdlength == 0 and cur.left > 0):
            return
        ok, reply = _rdata(cur, rtype, rdlength, owner, port137)
        msg.answers.append(Answer(owner, rtype, ttl, reply))
        if not ok:
            return
    msg.confirmed = True
