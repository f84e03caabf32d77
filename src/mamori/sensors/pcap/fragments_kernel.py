"""Compiled state and loop of the fragment reassembler (``fragments.py`` is its Python face).

Partial datagrams live in fixed-layout NumPy arrays, not Python objects, so one Numba pass takes a
batch's fragment rows: a slot per datagram (key, first header, total length, bytes held), an open
addressing table from key to slot, a list of slots in creation order (the oldest is the one dropped
when a bound is passed), and the fragments' payloads as parts (offset, length, place in one byte
arena) chained per datagram in arrival order, which decides overlaps. Growing an array is Python's
job: the pass stops before the fragment that needs more room and is resumed there, so a resumed
pass is the same as an uninterrupted one.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

# Per-slot integers (``slot_int`` columns).
S_HDR = 0  # bytes of the offset-0 fragment's IP header held, 0 until it arrived
S_TOTAL = 1  # payload length, -1 until the last fragment arrived
S_SIZE = 2  # payload bytes held in parts
S_PREV = 3  # creation-order list: older neighbour (-1 at the oldest)
S_NEXT = 4  # newer neighbour (-1 at the newest); the free list's link for a free slot
S_HEAD = 5  # first part in arrival order (-1 for none)
S_TAIL = 6  # last part
S_HASH = 7  # the key's hash
S_IDENT = 8  # the key's IP identification (as the ip_id column holds it)
S_VER = 9  # the key's IP version
S_PROTO = 10  # the key's protocol
S_ALIVE = 11  # 1 while pending
SLOT_INTS = 12

# Key words (``slot_key`` columns): the four address halves.
KEY_WORDS = 4

# Per-part integers (``part_int`` columns).
P_OFF = 0  # fragment offset
P_LEN = 1  # payload bytes held
P_POS = 2  # where they start in the arena
P_NEXT = 3  # next part of the datagram (the free list's link for a free part)
PART_INTS = 4

# Scalars (``scal``).
C_COUNT = 0  # pending datagrams
C_BYTES = 1  # their payload bytes
C_DROPPED = 2  # datagrams dropped by a bound
C_OLDEST = 3  # creation-order list ends
C_NEWEST = 4
C_FREE_SLOT = 5  # free lists
C_FREE_PART = 6
C_ARENA_TOP = 7  # arena bytes in use, dead ones included
C_OUT_TOP = 8  # bytes written to the output of the current batch
C_DONE = 9  # datagrams completed in the current batch
C_ARENA_END = 10  # arena bytes the pass may use before it asks for a compaction
SCALARS = 11

HDR_MAX = 60  # longest IPv4 header; an IPv6 one is 40

# Why a pass stopped early.
NEED_NOTHING = 0
NEED_PART = 1
NEED_ARENA = 2
NEED_OUT = 3
NEED_SLOT = 4


@intrinsic
def _move(typingctx, dst, d, src, s, n):  # type: ignore[no-untyped-def]
    """``dst[d : d + n] = src[s : s + n]`` as one memmove (the caller keeps the ranges inside the
    arrays): Numba's own slice copy goes byte by byte, which made copying fragment payloads the
    largest cost of the pass."""
    if not (
        isinstance(dst, types.Array)
        and isinstance(src, types.Array)
        and dst.dtype == src.dtype
        and dst.layout == "C"
        and src.layout == "C"
    ):
        return None  # contiguous arrays of one type only
    sig = types.void(dst, types.intp, src, types.intp, types.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        da = context.make_array(signature.args[0])(context, builder, args[0])
        sa = context.make_array(signature.args[2])(context, builder, args[2])
        size = context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype))
        dp = builder.gep(da.data, [args[1]])
        sp = builder.gep(sa.data, [args[3]])
        cgutils.raw_memmove(builder, dp, sp, args[4], size)
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(cache=True, inline="always")
def _hash(ver: int, sh: np.uint64, sl: np.uint64, dh: np.uint64, dl: np.uint64, ident: int,
          proto: int) -> np.int64:  # fmt: skip
    h = np.uint64(0x9E3779B97F4A7C15)
    for w in (sh, sl, dh, dl, np.uint64((ident & 0xFFFFFFFF) | (ver << 32) | (proto << 40))):
        h = (h ^ w) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(29)
    return np.int64(h >> np.uint64(1))


@nb.njit(cache=True)
def find(table: np.ndarray, slot_int: np.ndarray, slot_key: np.ndarray, ver: int, sh: np.uint64,
         sl: np.uint64, dh: np.uint64, dl: np.uint64, ident: int, proto: int) -> int:  # fmt: skip
    """The slot of a pending datagram, or -1."""
    mask = table.shape[0] - 1
    h = _hash(ver, sh, sl, dh, dl, ident, proto)
    i = h & mask
    while True:
        s = table[i]
        if s < 0:
            return -1
        if (
            slot_int[s, S_HASH] == h
            and slot_key[s, 0] == sh
            and slot_key[s, 1] == sl
            and slot_key[s, 2] == dh
            and slot_key[s, 3] == dl
            and slot_int[s, S_IDENT] == ident
            and slot_int[s, S_VER] == ver
            and slot_int[s, S_PROTO] == proto
        ):
            return s
        i = (i + 1) & mask


@nb.njit(cache=True)
def _unindex(table: np.ndarray, slot_int: np.ndarray, s: int) -> None:
    """Remove slot ``s`` from the table (linear probing, backward-shift deletion)."""
    mask = table.shape[0] - 1
    i = slot_int[s, S_HASH] & mask
    while table[i] != s:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        t = table[j]
        if t < 0:
            break
        k = slot_int[t, S_HASH] & mask
        # ``t`` may move back to ``i`` unless its home lies cyclically in (i, j].
        if (i < j and i < k <= j) or (i > j and (k > i or k <= j)):
            continue
        table[i] = t
        i = j
    table[i] = -1


@nb.njit(cache=True)
def _release(table: np.ndarray, slot_int: np.ndarray, part_int: np.ndarray, scal: np.ndarray,
             s: int, dropped: bool) -> None:  # fmt: skip
    """Forget pending datagram ``s``: completed, or dropped by a bound."""
    _unindex(table, slot_int, s)
    prev = slot_int[s, S_PREV]
    nxt = slot_int[s, S_NEXT]
    if prev >= 0:
        slot_int[prev, S_NEXT] = nxt
    else:
        scal[C_OLDEST] = nxt
    if nxt >= 0:
        slot_int[nxt, S_PREV] = prev
    else:
        scal[C_NEWEST] = prev
    p = slot_int[s, S_HEAD]
    while p >= 0:
        q = part_int[p, P_NEXT]
        part_int[p, P_NEXT] = scal[C_FREE_PART]
        scal[C_FREE_PART] = p
        p = q
    scal[C_BYTES] -= slot_int[s, S_SIZE]
    scal[C_COUNT] -= 1
    if dropped:
        scal[C_DROPPED] += 1
    slot_int[s, S_ALIVE] = 0
    slot_int[s, S_NEXT] = scal[C_FREE_SLOT]
    scal[C_FREE_SLOT] = s


@nb.njit(cache=True)
def _covered(slot_int: np.ndarray, part_int: np.ndarray, s: int, total: int) -> bool:
    """Whether the parts of ``s`` cover [0, total) (walked by offset, as the reference does)."""
    k = 0
    p = slot_int[s, S_HEAD]
    while p >= 0:
        k += 1
        p = part_int[p, P_NEXT]
    offs = np.empty(k, np.int64)
    ends = np.empty(k, np.int64)
    k = 0
    p = slot_int[s, S_HEAD]
    while p >= 0:
        offs[k] = part_int[p, P_OFF]
        ends[k] = part_int[p, P_OFF] + part_int[p, P_LEN]
        k += 1
        p = part_int[p, P_NEXT]
    order = np.argsort(offs)
    covered = 0
    for i in order:
        if covered >= total:
            break
        if offs[i] > covered:
            return False
        covered = max(covered, ends[i])
    return covered >= total


@nb.njit(cache=True)
def _emit(slot_int: np.ndarray, slot_hdr: np.ndarray, part_int: np.ndarray, arena: np.ndarray,
          out: np.ndarray, at: int, s: int, ver: int, proto: int) -> int:  # fmt: skip
    """Write datagram ``s`` as one raw IP packet at ``out[at:]``; returns its length."""
    hl = slot_int[s, S_HDR] if ver == 4 else 40
    total = slot_int[s, S_TOTAL]
    out[at : at + hl] = slot_hdr[s, :hl]
    if ver == 4:
        n = hl + total
        out[at + 2] = n >> 8
        out[at + 3] = n & 0xFF
        out[at + 6] = 0
        out[at + 7] = 0
    else:
        out[at + 4] = total >> 8
        out[at + 5] = total & 0xFF
        out[at + 6] = proto
    data = at + hl
    out[data : data + total] = 0
    p = slot_int[s, S_HEAD]
    while p >= 0:  # arrival order: a later overlap overwrites
        off = part_int[p, P_OFF]
        end = min(off + part_int[p, P_LEN], total)
        if end > off:
            _move(out, data + off, arena, part_int[p, P_POS], end - off)
        p = part_int[p, P_NEXT]
    return hl + total


@nb.njit(cache=True)
def reassemble(
    buf: np.ndarray,
    rows: np.ndarray,
    start: int,
    ip_ver: np.ndarray,
    src_hi: np.ndarray,
    src_lo: np.ndarray,
    dst_hi: np.ndarray,
    dst_lo: np.ndarray,
    ip_id: np.ndarray,
    proto_col: np.ndarray,
    frag_off: np.ndarray,
    pay_off: np.ndarray,
    pay_cap: np.ndarray,
    ip_off: np.ndarray,
    more_frags: np.ndarray,
    pay_len: np.ndarray,
    table: np.ndarray,
    slot_int: np.ndarray,
    slot_key: np.ndarray,
    slot_hdr: np.ndarray,
    part_int: np.ndarray,
    arena: np.ndarray,
    scal: np.ndarray,
    out: np.ndarray,
    done_row: np.ndarray,
    done_start: np.ndarray,
    done_len: np.ndarray,
    max_pending: int,
    max_bytes: int,
    max_datagram: int,
) -> tuple[int, int]:
    """Take fragment rows ``rows[start:]``; returns (where it stopped, what it needs there).

    Completed datagrams are appended to ``out`` and ``done_*`` (row of the completing fragment,
    start and length in ``out``). Before touching a fragment the pass makes sure it has a part, its
    payload's room in the arena and the room of a largest datagram in ``out``; if not, it returns
    that fragment's index and the NEED_* code, and nothing of the fragment has happened yet.
    """
    n = rows.shape[0]
    for i in range(start, n):
        r = rows[i]
        cap = np.int64(pay_cap[r])
        ver = np.int64(ip_ver[r])
        sh = src_hi[r]
        sl = src_lo[r]
        dh = dst_hi[r]
        dl = dst_lo[r]
        ident = np.int64(ip_id[r])
        proto = np.int64(proto_col[r])
        off = np.int64(frag_off[r])
        s = find(table, slot_int, slot_key, ver, sh, sl, dh, dl, ident, proto)
        if s < 0 and scal[C_FREE_SLOT] < 0:
            return i, NEED_SLOT
        if scal[C_FREE_PART] < 0:
            return i, NEED_PART
        if scal[C_ARENA_TOP] + cap > scal[C_ARENA_END]:
            return i, NEED_ARENA
        if scal[C_OUT_TOP] + max_datagram + HDR_MAX > out.shape[0]:
            return i, NEED_OUT
        if s < 0:  # a new datagram, the newest
            s = scal[C_FREE_SLOT]
            scal[C_FREE_SLOT] = slot_int[s, S_NEXT]
            h = _hash(ver, sh, sl, dh, dl, ident, proto)
            slot_int[s, :] = 0
            slot_int[s, S_TOTAL] = -1
            slot_int[s, S_HEAD] = -1
            slot_int[s, S_TAIL] = -1
            slot_int[s, S_HASH] = h
            slot_int[s, S_IDENT] = ident
            slot_int[s, S_VER] = ver
            slot_int[s, S_PROTO] = proto
            slot_int[s, S_ALIVE] = 1
            slot_key[s, 0] = sh
            slot_key[s, 1] = sl
            slot_key[s, 2] = dh
            slot_key[s, 3] = dl
            mask = table.shape[0] - 1
            j = h & mask
            while table[j] >= 0:
                j = (j + 1) & mask
            table[j] = s
            newest = scal[C_NEWEST]
            slot_int[s, S_PREV] = newest
            slot_int[s, S_NEXT] = -1
            if newest >= 0:
                slot_int[newest, S_NEXT] = s
            else:
                scal[C_OLDEST] = s
            scal[C_NEWEST] = s
            scal[C_COUNT] += 1
            if scal[C_COUNT] > max_pending:
                _release(table, slot_int, part_int, scal, scal[C_OLDEST], True)
        if slot_int[s, S_ALIVE]:
            known = False
            p = slot_int[s, S_HEAD]
            while p >= 0:
                if part_int[p, P_OFF] == off:
                    known = True
                    break
                p = part_int[p, P_NEXT]
            if not known:  # the first fragment at an offset is the one kept
                p = scal[C_FREE_PART]
                scal[C_FREE_PART] = part_int[p, P_NEXT]
                pos = scal[C_ARENA_TOP]
                src = pay_off[r]
                if cap > 0 and (src < 0 or src + cap > buf.shape[0]):
                    raise ValueError("fragment payload outside the batch buffer")
                _move(arena, pos, buf, src, cap)
                scal[C_ARENA_TOP] = pos + cap
                part_int[p, P_OFF] = off
                part_int[p, P_LEN] = cap
                part_int[p, P_POS] = pos
                part_int[p, P_NEXT] = -1
                tail = slot_int[s, S_TAIL]
                if tail >= 0:
                    part_int[tail, P_NEXT] = p
                else:
                    slot_int[s, S_HEAD] = p
                slot_int[s, S_TAIL] = p
                slot_int[s, S_SIZE] += cap
                scal[C_BYTES] += cap
                while scal[C_BYTES] > max_bytes and scal[C_COUNT] > 1:
                    _release(table, slot_int, part_int, scal, scal[C_OLDEST], True)
        if not slot_int[s, S_ALIVE]:
            continue  # dropped by a bound while taking this very fragment: it is gone
        if off == 0:  # the latest offset-0 fragment's header is the one used
            hl = pay_off[r] - ip_off[r] if ver == 4 else 40
            a = ip_off[r]
            slot_hdr[s, :hl] = buf[a : a + hl]
            slot_int[s, S_HDR] = hl
        if not more_frags[r]:
            slot_int[s, S_TOTAL] = off + np.int64(pay_len[r])
        total = slot_int[s, S_TOTAL]
        hl = slot_int[s, S_HDR]
        if total < 0 or hl == 0 or total > max_datagram:
            continue
        if (hl if ver == 4 else 0) + total > 0xFFFF:
            continue  # does not fit the length field: never completed
        if not _covered(slot_int, part_int, s, total):
            continue
        at = scal[C_OUT_TOP]
        length = _emit(slot_int, slot_hdr, part_int, arena, out, at, s, ver, proto)
        k = scal[C_DONE]
        done_row[k] = r
        done_start[k] = at
        done_len[k] = length
        scal[C_DONE] = k + 1
        scal[C_OUT_TOP] = at + length
        _release(table, slot_int, part_int, scal, s, False)
    return n, NEED_NOTHING


@nb.njit(cache=True)
def compact(slot_int: np.ndarray, part_int: np.ndarray, arena: np.ndarray, scal: np.ndarray,
            new_arena: np.ndarray, same: bool) -> None:  # fmt: skip
    """Move the pending parts' bytes to the front of ``new_arena``, which is ``arena`` itself when
    ``same``: parts move in the order of their place, each to a place no later than its own."""
    k = 0
    s = scal[C_OLDEST]
    while s >= 0:
        p = slot_int[s, S_HEAD]
        while p >= 0:
            k += 1
            p = part_int[p, P_NEXT]
        s = slot_int[s, S_NEXT]
    parts = np.empty(k, np.int64)
    place = np.empty(k, np.int64)
    k = 0
    s = scal[C_OLDEST]
    while s >= 0:
        p = slot_int[s, S_HEAD]
        while p >= 0:
            parts[k] = p
            place[k] = part_int[p, P_POS]
            k += 1
            p = part_int[p, P_NEXT]
        s = slot_int[s, S_NEXT]
    top = 0
    for i in np.argsort(place):
        p = parts[i]
        n = part_int[p, P_LEN]
        pos = part_int[p, P_POS]
        if pos != top or not same:
            _move(new_arena, top, arena, pos, n)
        part_int[p, P_POS] = top
        top += n
    scal[C_ARENA_TOP] = top


@nb.njit(cache=True)
def insert_rows(col: np.ndarray, n: int, extra: np.ndarray, anchor: np.ndarray, size: int) -> None:
    """With the old rows in ``col[:n]`` and room for the extras behind them, put ``extra[j]``
    right after old row ``anchor[j]`` (non-decreasing; extras after one row keep their order).

    ``col`` and ``extra`` are the columns' bytes (``size`` per row), so one compiled function
    serves every column type. Works from the end, so each old row moves once, by one memmove per
    run of rows.
    """
    o = n + anchor.shape[0]
    s = n
    for j in range(anchor.shape[0] - 1, -1, -1):
        a = anchor[j] + 1
        if s > a:
            o -= s - a
            _move(col, o * size, col, a * size, (s - a) * size)
            s = a
        o -= 1
        _move(col, o * size, extra, j * size, size)


@nb.njit(cache=True)
def renumber_parents(par: np.ndarray, n: int, extra: np.ndarray, anchor: np.ndarray) -> None:
    """Before :func:`insert_rows` on the ``parent`` column: old links (``par[:n]``) become the new
    row numbers; an extra row without a parent of its own (-1) takes its anchor's, one whose
    parent is another extra (an index into them) points at that extra's new row."""
    for i in range(n):
        p = par[i]
        if p >= 0:  # extras anchored before row p now precede it
            par[i] = p + np.searchsorted(anchor, p)
    for j in range(extra.shape[0]):
        p = extra[j]
        extra[j] = par[anchor[j]] if p < 0 else anchor[p] + 1 + p


@nb.njit(cache=True)
def index_all(table: np.ndarray, slot_int: np.ndarray) -> None:
    """Fill an empty table with every pending slot (after the slot arrays grew)."""
    mask = table.shape[0] - 1
    for s in range(slot_int.shape[0]):
        if slot_int[s, S_ALIVE]:
            j = slot_int[s, S_HASH] & mask
            while table[j] >= 0:
                j = (j + 1) & mask
            table[j] = s
