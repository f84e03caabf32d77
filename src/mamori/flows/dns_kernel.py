"""A compiled DNS message parser for the common case: columns out, no Python object per message.

Most analysed connections of a patrol are UDP DNS lookups whose messages hold a question and
A/AAAA/CNAME/PTR/NS answers. This kernel parses a batch of such messages (a byte store plus
offsets) following exactly the rules of ``analyzers.dns_wire`` (Zeek 7.2's reads: forgiving
fixed-width reads, names stopping at the first bad label, the first malformed RR ending the
message) and renders names and answers as dns.log text. Anything outside that subset (another
opcode, another answer type, a name that needs ``\\xNN`` escapes, an IPv6 address glibc would print
in dotted form) is flagged ``FALLBACK``: its conversation goes through the Python analyser, which
stays the reference.
"""

from __future__ import annotations

import numba as nb
import numpy as np

HEADER_LEN = 12
MAX_QUERIES = 25  # Zeek's dns_max_queries
NAME_ROOM = 512  # Zeek's name buffer

OK, SHORT, FALLBACK = 0, 1, 2  # message status
_UNKNOWN = np.frombuffer(b"<unknown type=", np.uint8)
_TXT = np.frombuffer(b"TXT ", np.uint8)
_SPF = np.frombuffer(b"SPF ", np.uint8)
_RRSIG = np.frombuffer(b"RRSIG ", np.uint8)
_ROOT = np.frombuffer(b"<Root>", np.uint8)
# RR types dns_wire parses with a handler of its own (the rest are "<unknown type=N>")
_KNOWN = np.zeros(65536, np.bool_)
_KNOWN[[1, 28, 38, 2, 5, 12, 6, 15, 33, 16, 99, 11, 41, 250, 46, 48, 47, 50, 51, 43, 65534, 44]] = (
    True
)
_KNOWN[[29, 64, 65, 13, 32, 249, 257]] = True
OTHER, ALTERNATING, QUERIES, REPLIES = 0, 1, 2, 3  # conversation shapes (see shapes)


@nb.njit(cache=True, inline="always")
def _room(text: np.ndarray, used: int, need: int) -> np.ndarray:
    """``text`` with room for ``need`` more bytes after ``used`` (doubling when full)."""
    if used + need <= text.shape[0]:
        return text
    grown = np.empty(max(2 * text.shape[0], used + need), np.uint8)
    grown[:used] = text[:used]
    return grown


@nb.njit(cache=True, inline="always")
def _name(
    buf: np.ndarray,
    base: int,
    end0: int,
    pos: int,
    text: np.ndarray,
    used: int,
    long_labels: bool = False,
) -> tuple[int, int, int, np.ndarray]:
    """Walk one name at message offset ``pos`` as ``dns_wire._Cursor._walk`` (labels over 63
    only with ``long_labels``, as NetBIOS names have them).

    Returns (next offset, rendered length, escape needed, text) with the lower-cased rendering
    written at ``text[used:]``.
    """
    end = end0
    resume = -1
    n = 0  # bytes written, dots included
    text = _room(text, used, NAME_ROOM + 2)
    while end - pos > 0:
        start = pos
        label = np.int64(buf[base + pos])
        pos += 1
        if label == 0:
            break
        if end - pos <= 0:
            break
        if label >= 0xC0:
            offset = ((label & 0x3F) << 8) | np.int64(buf[base + pos])
            pos += 1
            if offset >= start:
                break
            if resume < 0:
                resume = pos
            pos = offset
            end = start
            continue
        if label > end - pos:
            pos = end
            break
        if (label > 63 and not long_labels) or label >= NAME_ROOM - n:
            break
        for k in range(label):
            text[used + n + k] = buf[base + pos + k]
        n += label
        text[used + n] = 0x2E
        n += 1
        pos += label
    if resume < 0:
        resume = pos
    if n > 0:
        n -= 1  # the trailing dot
    bad = 0
    for k in range(n):
        c = text[used + k]
        if c < 0x20 or c >= 0x7F or c == 0x5C:
            bad = 1
        elif 0x41 <= c <= 0x5A:
            text[used + k] = c + 0x20
    return resume, n, bad, text


@nb.njit(cache=True)
def _decimal(text: np.ndarray, at: int, v: int) -> int:
    """Write ``v`` (0..65535) in decimal at ``text[at:]``; returns the new end."""
    if v >= 10000:
        text[at] = 0x30 + v // 10000
        at += 1
    if v >= 1000:
        text[at] = 0x30 + (v // 1000) % 10
        at += 1
    if v >= 100:
        text[at] = 0x30 + (v // 100) % 10
        at += 1
    if v >= 10:
        text[at] = 0x30 + (v // 10) % 10
        at += 1
    text[at] = 0x30 + v % 10
    return at + 1


@nb.njit(cache=True)
def _quad(text: np.ndarray, at: int, raw: np.ndarray, k: int) -> int:
    """Dotted quad of ``raw[k:k+4]``."""
    for j in range(4):
        if j:
            text[at] = 0x2E
            at += 1
        at = _decimal(text, at, np.int64(raw[k + j]))
    return at


@nb.njit(cache=True)
def _ipv6(text: np.ndarray, at: int, raw: np.ndarray) -> tuple[int, int]:
    """inet_ntop's text of 16 bytes (returns the new end and 1 when glibc would differ)."""
    words = np.empty(8, np.int64)
    for j in range(8):
        words[j] = (np.int64(raw[2 * j]) << 8) | np.int64(raw[2 * j + 1])
    mapped = True
    for j in range(5):
        if words[j] != 0:
            mapped = False
    if mapped and words[5] == 0xFFFF:  # Zeek keeps IPv4 as v4-mapped IPv6, printed dotted
        return _quad(text, at, raw, 12), 0
    best, best_len, cur, cur_len = -1, 0, -1, 0
    for j in range(8):
        if words[j] == 0:
            if cur < 0:
                cur, cur_len = j, 1
            else:
                cur_len += 1
            if cur_len > best_len:
                best, best_len = cur, cur_len
        else:
            cur = -1
            cur_len = 0
    if best_len < 2:
        best = -1
    if best == 0 and best_len >= 5:
        return at, 1  # glibc's embedded-IPv4 forms
    j = 0
    while j < 8:
        if j == best:
            text[at] = 0x3A
            at += 1
            if j == 0:
                text[at] = 0x3A
                at += 1
            j += best_len
            continue
        w = words[j]
        started = False
        for shift in (12, 8, 4, 0):
            d = (w >> shift) & 0xF
            if d or started or shift == 0:
                started = True
                text[at] = 0x30 + d if d < 10 else 0x57 + d
                at += 1
        if j < 7:
            text[at] = 0x3A
            at += 1
        j += 1
    return at, 0


@nb.njit(cache=True)
def _u16(buf: np.ndarray, at: int) -> int:
    return (np.int64(buf[at]) << 8) | np.int64(buf[at + 1])


@nb.njit(cache=True)
def parse(buf: np.ndarray, offs: np.ndarray, lens: np.ndarray, port137: np.ndarray):  # type: ignore[no-untyped-def]
    """Parse every message ``buf[offs[i]:offs[i]+lens[i]]`` (``port137[i]``: the message is
    NetBIOS name service traffic to port 137, parsed as dns_wire's ``port137``).

    Returns (header, status, nq, question, answers, text):

    * ``header[i]``: trans_id, flags, qdcount, ancount, nscount, arcount, confirmed
    * ``question[i]``: the last parsed question's text offset, length, qtype, qclass
    * ``nq[i]``: questions parsed; ``status[i]``: OK, SHORT (< 12 bytes) or FALLBACK
    * ``answers``: one row per parsed answer RR: message, owner text offset, owner length,
      TTL, has a reply (dns_wire's reply is not None), reply text offset, reply length
    """
    m = offs.shape[0]
    header = np.zeros((m, 7), np.int64)
    status = np.zeros(m, np.int8)
    nq = np.zeros(m, np.int64)
    question = np.zeros((m, 4), np.int64)
    cap = 0  # answer rows: at most ANCOUNT, and each consumes at least 4 bytes
    for i in range(m):
        if lens[i] >= HEADER_LEN:
            cap += min(_u16(buf, np.int64(offs[i]) + 6), lens[i] // 4 + 1)
    answers = np.empty((cap, 7), np.int64)
    na = 0
    text = np.empty(4096, np.uint8)
    used = 0
    raw16 = np.zeros(16, np.uint8)
    for i in range(m):
        base = np.int64(offs[i])
        end = np.int64(lens[i])
        long137 = port137[i]
        if end < HEADER_LEN:
            status[i] = SHORT
            continue
        for j in range(6):
            header[i, j] = _u16(buf, base + 2 * j)
        if (header[i, 1] >> 11) & 0xF != 0:
            status[i] = FALLBACK
            continue
        qd, an = header[i, 2], header[i, 3]
        if qd > MAX_QUERIES:
            continue
        pos = np.int64(HEADER_LEN)
        done = False
        for _q in range(qd):
            at = used
            pos, n, bad, text = _name(buf, base, end, pos, text, used, long137)
            if bad:
                status[i] = FALLBACK
            if end - pos < 4:
                done = True
                break
            question[i, 0] = at
            question[i, 1] = n
            question[i, 2] = _u16(buf, base + pos)
            question[i, 3] = _u16(buf, base + pos + 2)
            used = at + n
            pos += 4
            nq[i] += 1
        if done:
            continue
        for _a in range(an):
            at = used
            pos, n, bad, text = _name(buf, base, end, pos, text, used, long137)
            if bad:
                status[i] = FALLBACK
            used = at + n
            left = end - pos
            if left < 4:
                done = True
                break
            rtype = _u16(buf, base + pos)
            pos += 4  # type, class
            ttl = np.int64(0)
            if end - pos >= 4:
                ttl = (_u16(buf, base + pos) << 16) | _u16(buf, base + pos + 2)
                pos += 4
            rdlength = np.int64(0)
            if end - pos >= 2:
                rdlength = _u16(buf, base + pos)
                pos += 2
            left = end - pos
            if rdlength > left or (rdlength == 0 and left > 0):
                done = True
                break
            row = answers[na]
            na += 1
            row[0] = i
            row[1] = at
            row[2] = n
            row[3] = ttl
            row[5] = 0
            row[6] = 0
            text = _room(text, used, 64)
            rat = used
            if rtype == 1:
                if rdlength != 4:
                    row[4] = 0
                    done = True
                    break
                for j in range(4):
                    raw16[j] = buf[base + pos + j]
                pos += 4
                used = _quad(text, used, raw16, 0)
            elif rtype == 28 or rtype == 38:
                words = min(4, (end - pos) // 4)
                for j in range(16):
                    raw16[j] = buf[base + pos + j] if j < 4 * words else 0
                pos += 4 * words
                used, odd = _ipv6(text, used, raw16)
                if odd:
                    status[i] = FALLBACK
            elif rtype == 2 or rtype == 5 or rtype == 12 or rtype == 15:
                if rtype == 15 and end - pos >= 2:
                    pos += 2  # MX preference
                pos, n, bad, text = _name(buf, base, end, pos, text, used)
                if bad:
                    status[i] = FALLBACK
                used += n
            elif rtype == 16 or rtype == 99:  # TXT, SPF: "TXT <len> <text>" per string
                text = _room(text, used, 16 * rdlength + 64)
                rest = rdlength
                clean = True
                count = 0
                while rest > 0 and end - pos > 0:
                    size = np.int64(buf[base + pos])
                    pos += 1
                    rest -= 1
                    if size > rest:
                        clean = False
                        break
                    if count:
                        text[used] = 0x20
                        used += 1
                    count += 1
                    for c in _TXT if rtype == 16 else _SPF:
                        text[used] = c
                        used += 1
                    used = _decimal(text, used, size)
                    text[used] = 0x20
                    used += 1
                    for j in range(size):
                        c = buf[base + pos + j]
                        if c < 0x20 or c >= 0x7F or c == 0x5C:
                            status[i] = FALLBACK
                        text[used + j] = c
                    used += size
                    pos += size
                    rest -= size
                if not clean or rest != 0:
                    row[4] = 1
                    row[5] = rat
                    row[6] = used - rat
                    done = True
                    break
            elif rtype == 46:  # RRSIG: "RRSIG <type covered> <signer>"
                if end - pos < 18:
                    row[4] = 0
                    done = True
                    break
                covered = _u16(buf, base + pos)
                start = pos + 18
                for c in _RRSIG:
                    text[used] = c
                    used += 1
                used = _decimal(text, used, covered)
                text[used] = 0x20
                used += 1
                pos, n, bad, text = _name(buf, base, end, start, text, used)
                if bad:
                    status[i] = FALLBACK
                if n == 0:
                    text = _room(text, used, 8)
                    for c in _ROOT:
                        text[used + n] = c
                        n += 1
                used += n
                pos += max(0, min(rdlength - ((pos - start) + 18), end - pos))
            elif rtype == 6:  # SOA: logged as its MNAME
                pos, n, bad, text = _name(buf, base, end, pos, text, used)
                pos, _n2, bad2, text = _name(buf, base, end, pos, text, used + n)
                if bad or bad2:
                    status[i] = FALLBACK
                if end - pos < 20:
                    row[4] = 0
                    done = True
                    break
                pos += 20
                used += n
            elif rtype == 64 or rtype == 65:  # SVCB, HTTPS: parsed, not logged
                if end - pos < 3:
                    row[4] = 0
                    done = True
                    break
                start = pos
                pos, n, bad, text = _name(buf, base, end, pos + 2, text, used)
                if bad:
                    status[i] = FALLBACK
                pos = max(pos, start + rdlength)
                row[4] = 0
                continue
            elif rtype == 33 and long137:  # NBSTAT: Zeek skips it without consuming
                row[4] = 0
                continue
            elif rtype == 13 or rtype == 32 or rtype == 249 or rtype == 257:
                pos += rdlength  # HINFO, NB, TKEY, CAA: skipped, nothing logged
                row[4] = 0
                continue
            elif _KNOWN[rtype]:
                status[i] = FALLBACK  # rendered by the Python analyser only
                done = True
                break
            else:  # a type Zeek does not parse
                pos += rdlength
                for c in _UNKNOWN:
                    text[used] = c
                    used += 1
                used = _decimal(text, used, rtype)
                text[used] = 0x3E
                used += 1
            row[4] = 1
            row[5] = rat
            row[6] = used - rat
        if not done:
            header[i, 6] = 1
    return header, status, nq, question, answers[:na], text[:used]


@nb.njit(cache=True)
def gather(text: np.ndarray, at: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrow string buffers (int32 offsets, data) of the pieces ``text[at[k]:at[k]+size[k]]``."""
    n = at.shape[0]
    offsets = np.zeros(n + 1, np.int32)
    total = 0
    for k in range(n):
        total += size[k]
        offsets[k + 1] = total
    data = np.empty(total, np.uint8)
    for k in range(n):
        o = offsets[k]
        for j in range(size[k]):
            data[o + j] = text[at[k] + j]
    return offsets, data


@nb.njit(cache=True)
def shapes(
    first: np.ndarray,
    counts: np.ndarray,
    is_orig: np.ndarray,
    qr: np.ndarray,
    tid: np.ndarray,
    good: np.ndarray,
    ts: np.ndarray,
    timeout: float,
) -> np.ndarray:
    """Each conversation's shape, when all its messages parsed in the kernel's subset:
    QUERIES (queries only: each is a row of its own, as Zeek logs unanswered queries), REPLIES
    (replies from the responder only: each a row of its own), ALTERNATING (queries from the
    originator, each but perhaps the last followed by the responder's reply with its ID, no query
    left waiting when the DNS session expires: a row per query with its reply) or OTHER.

    The expiry follows the Python analyser's timer loop exactly (same float additions): a timer
    every ``timeout`` seconds from the session's first message ends the session when the last
    message is at least ``timeout - 1`` old.
    """
    n = first.shape[0]
    out = np.zeros(n, np.int8)
    for c in range(n):
        f, k = first[c], counts[c]
        if k == 0:
            continue
        ok = True
        for j in range(f, f + k):
            if not good[j]:
                ok = False
        if not ok:
            continue
        queries = replies = True
        for j in range(f, f + k):
            if qr[j]:
                queries = False
            if not qr[j] or is_orig[j]:
                replies = False
        if queries:
            out[c] = QUERIES
            continue
        if replies:
            out[c] = REPLIES
            continue
        nxt = ts[f] + timeout
        last = ts[f]
        for j in range(f, f + k):
            reply = (j - f) % 2 == 1
            if reply:
                if is_orig[j] or not qr[j] or tid[j] != tid[j - 1]:
                    ok = False
                    break
            elif not is_orig[j] or qr[j]:
                ok = False
                break
            if j > f:
                expired = False
                while nxt <= ts[j]:
                    if nxt - last >= timeout - 1.0:
                        expired = True
                        break
                    nxt += timeout
                if expired:
                    if reply:
                        ok = False
                        break
                    nxt = ts[j] + timeout
            last = ts[j]
        if ok:
            out[c] = ALTERNATING
    return out
