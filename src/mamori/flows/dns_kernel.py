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


@nb.njit(cache=True, inline="always")
def _room(text: np.ndarray, used: int, need: int) -> np.ndarray:
    """``text`` with room for ``need`` more bytes after ``used`` (doubling when full)."""
    if used + need <= text.shape[0]:
        return text
    grown = np.empty(max(2 * text.shape[0], used + need), np.uint8)
    grown[:used] = text[:used]
    return grown


@nb.njit(cache=True)
def _name(
    buf: np.ndarray, base: int, end0: int, pos: int, text: np.ndarray, used: int
) -> tuple[int, int, int, np.ndarray]:
    """Walk one name at message offset ``pos`` as ``dns_wire._Cursor._walk`` (no long labels).

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
        if label > 63 or label >= NAME_ROOM - n:
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
def parse(buf: np.ndarray, offs: np.ndarray, lens: np.ndarray):  # type: ignore[no-untyped-def]
    """Parse every message ``buf[offs[i]:offs[i]+lens[i]]``.

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
    cap = 0
    for i in range(m):
        cap += lens[i] // 4 + 1
    answers = np.zeros((cap, 7), np.int64)
    na = 0
    text = np.empty(4096, np.uint8)
    used = 0
    raw16 = np.zeros(16, np.uint8)
    for i in range(m):
        base = np.int64(offs[i])
        end = np.int64(lens[i])
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
            pos, n, bad, text = _name(buf, base, end, pos, text, used)
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
            pos, n, bad, text = _name(buf, base, end, pos, text, used)
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
            elif rtype == 2 or rtype == 5 or rtype == 12:
                pos, n, bad, text = _name(buf, base, end, pos, text, used)
                if bad:
                    status[i] = FALLBACK
                used += n
            else:
                status[i] = FALLBACK
                done = True
                break
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
