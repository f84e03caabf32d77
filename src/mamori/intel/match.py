"""Vectorised matching of indicators against lake records: joins and compiled lookups, no loop
per record in Python.

* IP addresses: a Polars join on the canonical text (the lake holds Zeek's canonical form).
* CIDR ranges: longest prefix wins. The ranges are flattened once into sorted, disjoint
  ``[start, next start)`` intervals, each labelled with the most specific range covering it.
  IPv4 takes a compiled path in three passes over the records: parse the address text straight
  from the Arrow buffer into integers; read one entry of a direct table of address blocks (up to
  2^24 blocks of /24, 64 MB of int32, sized to the index) that holds the label itself when one
  interval covers the whole block, which settles most addresses in one memory read; then search
  the few addresses whose block holds a bound, from the block's first interval onwards. The
  passes are separate on purpose: a tight loop of independent table reads keeps many cache misses
  in flight, where one fused loop (parse, then read) waits for each miss in turn (measured: 3×).
  Text that is not a plain dotted quad (IPv6, leading zeros, junk) is decided by ``ipaddress``
  once per distinct value, so results are exactly the standard library's. IPv6 addresses are
  searched over (high, low) uint64 pairs.
* Domains: a name matches an indicator for itself or for any parent domain. The suffixes of each
  query are hashed right to left in one pass (FNV-1a over the reversed bytes, so every suffix's
  hash is a prefix of the same computation). Each suffix hash is first tested against a two-probe
  Bloom filter of the indicator hashes (at most 1 MB, so it stays near the cores; ~2 % false
  positives with a million values), and only then probed in an open-addressing table of the
  indicator values (slots hold 31 bits of the hash beside the index, so a miss rarely touches the
  values' bytes), each hit verified byte for byte. Hashing, filter and table are separate passes
  over a chunk of names, each a tight loop whose memory reads overlap. Names are compared with ASCII case folding and one root dot removed
  (DNS names are ASCII; indicator values are lower-cased and stripped of trailing dots).
* URLs (host + path, with or without the query) and JA3/JA3S/JA4: Polars joins.

``match()`` first *screens* each observable column (``mamori.intel.screen``: one compiled pass
per row over the Arrow string views, read in place, that stops the rows which cannot name any
indicator: an address in a block no listed range or address touches, a name no suffix of which
passes the domain filter, a URL outside a Bloom filter of the listed URLs), then runs the exact
path on the rows let through, by *distinct* value: those rows are coded by value
(``distinct_codes``: a hash table whose key is the string itself up to 16 bytes), each value is
looked up once, hits are mapped back to records through the codes, and rows are built only for
the records that hit, with at most ``per_value`` indicators per value.

The indexes and screens of the last two indicator tables are kept (``_matcher_for``), keyed by
the indicators' type and value columns compared in full: matching the same store again costs no
rebuild.
"""

from __future__ import annotations

import ctypes
import ipaddress
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numba as nb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

NO_MATCH = -1
# The IPv4 block table has 2^bits entries: about 8 per interval bound, between 2^10 and 2^24 (the
# /24 blocks, 64 MB): with a million ranges ~88 % of blocks hold no bound, so most lookups are
# settled by one read.
_MIN_BITS, _MAX_BITS = 10, 24
_NOT_V4 = -2


# Below this many records the compiled kernels run on the calling thread only: waking the worker
# threads costs more than the work (on a busy machine, tens of milliseconds per kernel).
_PARALLEL_FROM = 100_000


@contextmanager
def _threads_for(n: int) -> Iterator[None]:
    """Numba's thread count for ``n`` records: one for small inputs, all otherwise."""
    before = nb.get_num_threads()
    if n < _PARALLEL_FROM:
        nb.set_num_threads(1)
    try:
        yield
    finally:
        nb.set_num_threads(before)


def _views(series: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, object]:
    """A string column as Arrow string views, read in place: (views as (n, 2) uint64, byte length
    per row with -1 for null, bytes, each data buffer's start in those bytes, the Arrow array that
    owns the memory: keep it while the others are used). Polars keeps strings as views, so
    nothing is copied: strings of up to 12 bytes live inside their view, longer ones in one of the
    data buffers, which are reached through one byte array spanning them all (only the buffers'
    own bytes are ever read, by aligned words, which never cross a page)."""
    if series.n_chunks() > 1:
        series = series.rechunk()
    arr = series.cast(pl.String).to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string_view(arr.type):
        arr = pc.cast(arr, pa.string_view())
    n = len(arr)
    bufs = arr.buffers()
    views = (
        np.frombuffer(bufs[1], np.uint64).reshape(-1, 2)[arr.offset : arr.offset + n]
        if n
        else np.zeros((0, 2), np.uint64)
    )
    lens = (views[:, 0] & np.uint64(0xFFFFFFFF)).astype(np.int64)
    if arr.null_count:
        lens[~np.asarray(arr.is_valid())] = -1
    data_bufs = [b for b in bufs[2:] if b is not None and b.size]
    if not data_bufs:
        return views, lens, np.zeros(16, np.uint8), np.zeros(max(len(bufs) - 2, 1), np.int64), arr
    lo = min(b.address for b in data_bufs) & ~7
    hi = (max(b.address + b.size for b in data_bufs) + 7) & ~7  # whole words: same pages
    span = np.ctypeslib.as_array((ctypes.c_uint8 * (hi - lo)).from_address(lo))
    base = np.array([(b.address - lo) if b is not None else 0 for b in bufs[2:]], np.int64)
    return views, lens, span, base, arr


@nb.njit(cache=True, inline="always")
def _view_start(views, data_base, i):  # type: ignore[no-untyped-def]
    """Where the bytes of long string ``i`` start in the concatenated data buffers."""
    w1 = views[i, 1]
    return data_base[np.int64(w1 & np.uint64(0xFFFFFFFF))] + np.int64(w1 >> np.uint64(32))


def _arrow_strings(series: pl.Series) -> tuple[np.ndarray, np.ndarray, object]:
    """(int64 offsets, uint8 bytes, the Arrow array owning them: keep it while they are used) of
    a string column, nulls as empty strings. Polars writes the Arrow large strings itself (faster
    than a kernel copying views). The bytes are seen up to a whole number of words, so kernels
    may read them as words: the last, partial one lies on the same page as the bytes."""
    arr = series.fill_null("").to_arrow()
    arr = pc.cast(arr, pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    if bufs[2] is None or not bufs[2].size or bufs[2].address % 8:
        data = np.zeros(((bufs[2].size if bufs[2] is not None else 0) // 8 + 1) * 8, np.uint8)
        if bufs[2] is not None and bufs[2].size:
            data[: bufs[2].size] = np.frombuffer(bufs[2], np.uint8)
        return offsets, data, arr
    size = (bufs[2].size + 7) & ~7
    data = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(bufs[2].address))
    return offsets, data, arr


# ---------------------------------------------------------------------------------------------
# Distinct values: one code per record, so each value is looked up once


_MIX = np.uint64(0x9E3779B97F4A7C15)


@nb.njit(cache=True, inline="always")
def _fmix(h):  # type: ignore[no-untyped-def]
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@nb.njit(cache=True, inline="always")
def _inline_words(views, lens, i):  # type: ignore[no-untyped-def]
    """The two words of an inline view (<= 12 bytes) with any byte past the string cleared, so
    equal strings have equal words whatever the writer left in the padding."""
    n = lens[i]
    w0 = views[i, 0]
    w1 = views[i, 1]
    if n < 4:
        w0 &= (np.uint64(1) << np.uint64(32 + 8 * n)) - np.uint64(1)
        w1 = np.uint64(0)
    elif n < 12:
        w1 &= (np.uint64(1) << np.uint64(8 * (n - 4))) - np.uint64(1)
    return w0, w1


@nb.njit(cache=True, inline="always")
def _word(d64, p, k):  # type: ignore[no-untyped-def]
    """Bytes p to p + k (k <= 8) of the data as a little-endian word, from one or two aligned
    reads of the data seen as words, never of a word without one of those bytes."""
    q = p >> 3
    r = np.uint64(8 * (p & 7))
    w = d64[q] >> r
    if r != 0 and r + np.uint64(8 * k) > np.uint64(64):  # only a word holding wanted bytes
        w |= d64[q + 1] << (np.uint64(64) - r)
    if k < 8:
        w &= (np.uint64(1) << np.uint64(8 * k)) - np.uint64(1)
    return w


@nb.njit(cache=True, inline="always")
def _bytes_hash(d64, s, n):  # type: ignore[no-untyped-def]
    """Every byte of a string longer than the inline views, eight at a time."""
    h = np.uint64(n)
    p = 0
    while p + 8 <= n:
        h = (h ^ _word(d64, s + p, 8)) * _MIX
        h ^= h >> np.uint64(29)
        p += 8
    if p < n:
        h = (h ^ _word(d64, s + p, n - p)) * _MIX
    return _fmix(h)


@nb.njit(cache=True)
def _view_hash(views, lens, d64, data_base, i):  # type: ignore[no-untyped-def]
    n = lens[i]
    if n <= 12:
        w0, w1 = _inline_words(views, lens, i)
        return _fmix((w0 * _MIX) ^ w1)
    return _bytes_hash(d64, _view_start(views, data_base, i), n)


@nb.njit(cache=True)
def _view_equal(views, lens, data, data_base, i, j):  # type: ignore[no-untyped-def]
    n = lens[i]
    if n != lens[j]:
        return False
    if n <= 12:
        a0, a1 = _inline_words(views, lens, i)
        b0, b1 = _inline_words(views, lens, j)
        return a0 == b0 and a1 == b1
    if views[i, 0] != views[j, 0]:  # length and the first four bytes
        return False
    si = _view_start(views, data_base, i)
    sj = _view_start(views, data_base, j)
    for k in range(n):  # noqa: SIM110 (a loop, for Numba)
        if data[si + k] != data[sj + k]:
            return False
    return True


@nb.njit(cache=True, inline="always")
def _key(views, lens, d64, data_base, i):  # type: ignore[no-untyped-def]
    """(hash, word a, word b) of row ``i``: for up to 16 bytes the words are the string itself
    (so equal keys are equal strings: every address, most fingerprints); beyond, the words are
    the length with the first four bytes, and the hash is of every byte (``_verify`` checks)."""
    n = lens[i]
    if n <= 12:
        w0, w1 = _inline_words(views, lens, i)
        a = (w0 >> np.uint64(32)) | (w1 << np.uint64(32))
        b = (w1 >> np.uint64(32)) | (np.uint64(n) << np.uint64(56))
        return _fmix((a * _MIX) ^ b), a, b
    s = _view_start(views, data_base, i)
    if n <= 16:
        a = _word(d64, s, 8)
        b = _word(d64, s + 8, n - 8) | (np.uint64(n) << np.uint64(56))
        return _fmix((a * _MIX) ^ b), a, b
    return _bytes_hash(d64, s, n), views[i, 0], np.uint64(0xFFFFFFFFFFFFFFFF)


_BATCH = 128  # rows keyed before their table reads


@nb.njit(cache=True, nogil=True)
def _distinct(views, lens, d64, data_base, codes):  # type: ignore[no-untyped-def]
    """Dense codes by key (see ``_key``) into ``codes`` (-1 for null and empty); returns the
    first row of each code. Each slot holds a whole key beside its code (half a cache line).
    Rows go in batches: keys first (reading the column in order), then the table reads, in a
    loop whose iterations rarely depend on each other, so their cache misses overlap. Single-
    threaded and free of the GIL: several columns run at once on Python threads."""
    cap = 1 << 12
    table = np.zeros((cap, 4), np.uint64)  # hash, word a, word b, code + 1 (0: empty)
    first = np.empty(cap // 2, np.int64)
    k = 0
    n = lens.shape[0]
    bh = np.empty(_BATCH, np.uint64)
    ba = np.empty(_BATCH, np.uint64)
    bb = np.empty(_BATCH, np.uint64)
    for lo in range(0, n, _BATCH):
        hi = min(n, lo + _BATCH)
        for i in range(lo, hi):
            if lens[i] > 0:
                bh[i - lo], ba[i - lo], bb[i - lo] = _key(views, lens, d64, data_base, i)
        for i in range(lo, hi):
            if lens[i] <= 0:
                codes[i] = -1
                continue
            h, wa, wb = bh[i - lo], ba[i - lo], bb[i - lo]
            mask = np.uint64(cap - 1)
            slot = h & mask
            while True:
                if table[slot, 3] == 0:
                    table[slot, 0] = h
                    table[slot, 1] = wa
                    table[slot, 2] = wb
                    table[slot, 3] = k + 1
                    first[k] = i
                    codes[i] = k
                    k += 1
                    break
                if table[slot, 0] == h and table[slot, 1] == wa and table[slot, 2] == wb:
                    codes[i] = np.int64(table[slot, 3]) - 1
                    break
                slot = (slot + np.uint64(1)) & mask
            if 2 * k >= cap:  # keep the table at most half full
                old = table
                cap *= 2
                mask = np.uint64(cap - 1)
                table = np.zeros((cap, 4), np.uint64)
                for r in range(old.shape[0]):
                    if old[r, 3] != 0:
                        slot = old[r, 0] & mask
                        while table[slot, 3] != 0:
                            slot = (slot + np.uint64(1)) & mask
                        table[slot] = old[r]
                grown = np.empty(cap // 2, np.int64)
                grown[:k] = first[:k]
                first = grown
    return first[:k].copy()


@nb.njit(cache=True, nogil=True)
def _verify(views, lens, data, data_base, codes, first):  # type: ignore[no-untyped-def]
    """Rows of more than 16 bytes whose bytes differ from their code's first row (a hash
    collision: about never, but then the caller falls back to an exact comparison)."""
    bad = 0
    for i in range(lens.shape[0]):
        if lens[i] > 16 and not _view_equal(views, lens, data, data_base, i, first[codes[i]]):
            bad += 1
    return bad


@nb.njit(cache=True, nogil=True)
def _distinct_exact(views, lens, data, d64, data_base, codes):  # type: ignore[no-untyped-def]
    """The slow exact fallback: a byte comparison at every probe."""
    cap = 1 << 12
    table = np.full(cap, -1, np.int64)
    hashes = np.empty(cap // 2, np.uint64)
    first = np.empty(cap // 2, np.int64)
    k = 0
    for i in range(lens.shape[0]):
        if lens[i] <= 0:
            codes[i] = -1
            continue
        h = _view_hash(views, lens, d64, data_base, i)
        mask = np.uint64(cap - 1)
        slot = h & mask
        while True:
            c = table[slot]
            if c == -1:
                table[slot] = k
                hashes[k] = h
                first[k] = i
                codes[i] = k
                k += 1
                break
            if hashes[c] == h and _view_equal(views, lens, data, data_base, i, first[c]):
                codes[i] = c
                break
            slot = (slot + np.uint64(1)) & mask
        if 2 * k >= cap:
            cap *= 2
            mask = np.uint64(cap - 1)
            table = np.full(cap, -1, np.int64)
            for c in range(k):
                slot = hashes[c] & mask
                while table[slot] != -1:
                    slot = (slot + np.uint64(1)) & mask
                table[slot] = c
            hashes = np.concatenate((hashes, np.empty(cap // 2 - hashes.shape[0], np.uint64)))
            first = np.concatenate((first, np.empty(cap // 2 - first.shape[0], np.int64)))
    return first[:k].copy()


def _distinct_rows(
    views: np.ndarray, lens: np.ndarray, data: np.ndarray, base: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    """``_distinct`` over some rows, made exact: a collision among strings over 16 bytes (hash,
    length and first four bytes alike) sends the rows to the comparing kernel."""
    d64 = data.view(np.uint64)
    first = _distinct(views, lens, d64, base, codes)
    if (lens > 16).any() and _verify(views, lens, data, base, codes, first):
        first = _distinct_exact(views, lens, data, d64, base, codes)
    return first


_SAMPLE = 1 << 16  # rows coded first, to tell a column of repeats from one of distinct values
_MOSTLY_DISTINCT = 0.5


def distinct_codes(series: pl.Series, sample: int = _SAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, first row of each code): codes are dense, ``series.gather(first)`` are the
    values of the codes in order of first sight, and null and empty rows get -1. Rows with equal
    text share a code, except in a column that is mostly distinct: when more than half of its
    first ``sample`` rows are, each row is its own code (coding would cost more than it saves:
    a table as large as the column). The kernel holds no GIL, so callers code several columns
    at once on Python threads."""
    views, lens, data, base, _keep = _views(series)
    codes = np.empty(len(lens), np.int32)
    if len(lens) > 4 * sample:
        head = np.empty(sample, np.int32)
        seen = _distinct_rows(views[:sample], lens[:sample], data, base, head)
        if len(seen) > _MOSTLY_DISTINCT * sample:
            first = np.flatnonzero(lens > 0)
            codes.fill(-1)
            codes[first] = np.arange(len(first), dtype=np.int32)
            return codes, first
    return codes, _distinct_rows(views, lens, data, base, codes)


# ---------------------------------------------------------------------------------------------
# CIDR: flatten nested ranges into labelled intervals, then binary search


@nb.njit(cache=True)
def _less(ah: np.uint64, al: np.uint64, bh: np.uint64, bl: np.uint64) -> bool:
    return ah < bh or (ah == bh and al < bl)


@nb.njit(cache=True)
def _flatten(shi, slo, ehi, elo):  # type: ignore[no-untyped-def]
    """Disjoint labelled intervals from ranges sorted by start ascending, end descending.

    CIDR ranges are nested or disjoint, so a stack of the ranges covering the sweep position is
    enough: the top is the most specific one. Each returned bound starts an interval that runs to
    the next bound; its label is a range index or -1 (no range).
    """
    n = shi.shape[0]
    bhi = np.empty(2 * n + 1, np.uint64)
    blo = np.empty(2 * n + 1, np.uint64)
    lab = np.empty(2 * n + 1, np.int64)
    stack = np.empty(n + 1, np.int64)
    sp = 0
    m = 0
    one = np.uint64(1)
    zero = np.uint64(0)
    for j in range(n + 1):
        # close the ranges that end before range j starts (all of them after the last range)
        while sp > 0 and (j == n or _less(ehi[stack[sp - 1]], elo[stack[sp - 1]], shi[j], slo[j])):
            t = stack[sp - 1]
            sp -= 1
            nxt = stack[sp - 1] if sp > 0 else -1
            nl = elo[t] + one
            nh = ehi[t] + (one if nl == zero else zero)
            if nl == zero and nh == zero:
                continue  # the range ends at the top of the address space
            if m > 0 and bhi[m - 1] == nh and blo[m - 1] == nl:
                lab[m - 1] = nxt
            else:
                bhi[m], blo[m], lab[m] = nh, nl, nxt
                m += 1
        if j == n:
            break
        if m > 0 and bhi[m - 1] == shi[j] and blo[m - 1] == slo[j]:
            lab[m - 1] = j
        else:
            bhi[m], blo[m], lab[m] = shi[j], slo[j], j
            m += 1
        stack[sp] = j
        sp += 1
    return bhi[:m], blo[:m], lab[:m]


@nb.njit(cache=True, inline="always")
def _parse_v4(data, s, e):  # type: ignore[no-untyped-def]
    """Dotted quad in data[s:e] as an int, or -1 when it is not one as ``ipaddress`` spells it
    (four decimal octets <= 255, no leading zeros)."""
    if e - s < 7 or e - s > 15:
        return -1
    value = 0
    octet = 0
    digits = 0
    dots = 0
    for p in range(s, e):
        c = data[p]
        if c == 46:  # '.'
            if digits == 0 or octet > 255:
                return -1
            value = value * 256 + octet
            octet = 0
            digits = 0
            dots += 1
        elif 48 <= c <= 57 and digits < 3:
            if digits == 1 and octet == 0:
                return -1  # a leading zero: ipaddress refuses it (octal ambiguity)
            octet = octet * 10 + (c - 48)
            digits += 1
        else:
            return -1
    if dots != 3 or digits == 0 or octet > 255:
        return -1
    return value * 256 + octet


@nb.njit(parallel=True, cache=True)
def _parse_all_v4(offsets, data, out):  # type: ignore[no-untyped-def]
    for i in nb.prange(offsets.shape[0] - 1):
        out[i] = _parse_v4(data, offsets[i], offsets[i + 1])


@nb.njit(cache=True)
def _block_table(bounds, labels, shift, table):  # type: ignore[no-untyped-def]
    """Per address block: ``-(label + 2)`` when one interval covers the whole block, else the
    index of the interval covering the block's start (>= 0). ``bounds[0]`` is 0."""
    n = bounds.shape[0]
    k = 0
    size = np.int64(1) << shift
    for blk in range(table.shape[0]):
        start = np.int64(blk) << shift
        while k + 1 < n and bounds[k + 1] <= start:
            k += 1
        if k + 1 < n and bounds[k + 1] < start + size:
            table[blk] = k
        else:
            table[blk] = -(labels[k] + 2)


@nb.njit(parallel=True, cache=True)
def _gather_blocks(values, table, shift, out):  # type: ignore[no-untyped-def]
    """One independent read per address (a tight loop, so the reads overlap)."""
    for i in nb.prange(values.shape[0]):
        v = values[i]
        out[i] = table[v >> shift] if v >= 0 else 0


@nb.njit(parallel=True, cache=True)
def _resolve(values, bounds, labels, out):  # type: ignore[no-untyped-def]
    """Turn block entries into labels: decode uniform blocks; search the others from the block's
    first interval (galloping, then binary: a block may hold many bounds)."""
    n = bounds.shape[0]
    for i in nb.prange(values.shape[0]):
        e = out[i]
        if values[i] < 0:
            out[i] = _NOT_V4
        elif e < 0:
            out[i] = -e - 2
        else:
            v = values[i]
            lo = e  # bounds[lo] <= v
            step = 1
            hi = lo + 1
            while hi < n and bounds[hi] <= v:
                lo = hi
                hi = lo + step
                step *= 2
            if hi > n:
                hi = n
            # rightmost bound <= v lies in [lo, hi)
            while hi - lo > 1:
                mid = (lo + hi) >> 1
                if bounds[mid] <= v:
                    lo = mid
                else:
                    hi = mid
            out[i] = labels[lo]


@nb.njit(parallel=True, cache=True)
def _lookup_128(qhi, qlo, bhi, blo, labels, out):  # type: ignore[no-untyped-def]
    for i in nb.prange(qhi.shape[0]):
        lo = 0
        hi = bhi.shape[0]
        while lo < hi:
            mid = (lo + hi) >> 1
            if not _less(qhi[i], qlo[i], bhi[mid], blo[mid]):
                lo = mid + 1
            else:
                hi = mid
        out[i] = labels[lo - 1] if lo > 0 else NO_MATCH


def _split128(values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    arr = np.array(values, dtype=object)
    return (arr >> 64).astype(np.uint64), (arr & ((1 << 64) - 1)).astype(np.uint64)


def _v4_networks(nets: pl.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, end) of IPv4 CIDRs parsed by Polars (fast for a million); None if any is not."""
    parts = nets.str.extract_groups(r"^(\d+)\.(\d+)\.(\d+)\.(\d+)/(\d+)$").struct.unnest()
    if parts.null_count().sum_horizontal().item():
        return None
    o = [parts[c].cast(pl.UInt64).to_numpy() for c in parts.columns]
    addr = (o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]
    size = np.left_shift(np.uint64(1), (32 - o[4]).astype(np.uint64))
    start = addr & ~(size - np.uint64(1)) & np.uint64(0xFFFFFFFF)
    return start, start + size - np.uint64(1)


@dataclass
class CidrIndex:
    """Longest-prefix lookup over a set of CIDR ranges; labels are positions in ``networks``."""

    networks: pl.Series  # distinct ranges, label = position
    v4_bounds: np.ndarray  # interval starts, ascending, the first 0
    v4_labels: np.ndarray
    v4_table: np.ndarray  # per address block, see _block_table
    v4_shift: int
    v6_hi: np.ndarray
    v6_lo: np.ndarray
    v6_labels: np.ndarray

    @classmethod
    def build(cls, networks: pl.Series) -> CidrIndex:
        nets = networks.drop_nulls().unique(maintain_order=True).rename("network")
        is_v4 = ~nets.str.contains(":")
        v4, v6 = nets.filter(is_v4), nets.filter(~is_v4)
        v4_pos = np.flatnonzero(is_v4.to_numpy())
        v6_pos = np.flatnonzero(~is_v4.to_numpy())
        parsed = _v4_networks(v4) if v4.len() else (np.zeros(0, np.uint64),) * 2
        if parsed is None:  # unusual spellings: let ipaddress decide, once per range
            ranges = [ipaddress.ip_network(x, strict=False) for x in v4]
            parsed = (
                np.array([int(r.network_address) for r in ranges], np.uint64),
                np.array([int(r.broadcast_address) for r in ranges], np.uint64),
            )
        start, end = parsed
        order = np.lexsort((-end.astype(np.int64), start))
        _, blo, lab = _flatten(
            np.zeros(len(order), np.uint64),
            start[order],
            np.zeros(len(order), np.uint64),
            end[order],
        )
        v4_labels = np.where(lab >= 0, v4_pos[order][lab], NO_MATCH) if len(lab) else lab
        if not len(blo) or blo[0] != 0:  # every address falls in an interval, maybe unlabelled
            blo = np.r_[np.uint64(0), blo]
            v4_labels = np.r_[np.int64(NO_MATCH), v4_labels]
        v4_bounds = blo.astype(np.int64)
        v4_labels = v4_labels.astype(np.int64)
        bits = min(_MAX_BITS, max(_MIN_BITS, len(v4_bounds).bit_length() + 3))
        shift = 32 - bits
        table = np.empty(1 << bits, np.int32)
        _block_table(v4_bounds, v4_labels, shift, table)

        ranges6 = [ipaddress.ip_network(x, strict=False) for x in v6]
        shi, slo = _split128([int(r.network_address) for r in ranges6])
        ehi, elo = _split128([int(r.broadcast_address) for r in ranges6])
        plen = np.array([r.prefixlen for r in ranges6], np.int64)
        order6 = np.lexsort((plen, slo, shi))  # start ascending, shorter (enclosing) prefix first
        h6, l6, lab6 = _flatten(shi[order6], slo[order6], ehi[order6], elo[order6])
        v6_labels = np.where(lab6 >= 0, v6_pos[order6][lab6], NO_MATCH) if len(lab6) else lab6
        return cls(nets, v4_bounds, v4_labels, table, shift, h6, l6, v6_labels.astype(np.int64))

    def lookup(self, addresses: pl.Series) -> np.ndarray:
        """Label (position in ``networks``) of the longest range holding each address, or -1."""
        offsets, data, _keep = _arrow_strings(addresses)
        values = np.empty(len(offsets) - 1, np.int64)
        out = np.empty(len(values), np.int64)
        with _threads_for(len(values)):
            _parse_all_v4(offsets, data, values)
            _gather_blocks(values, self.v4_table, self.v4_shift, out)
            _resolve(values, self.v4_bounds, self.v4_labels, out)
        del values
        rest = np.flatnonzero(out == _NOT_V4)
        out[rest] = NO_MATCH
        if len(rest) and len(self.v6_hi):
            other = addresses.gather(rest)
            distinct = other.unique().drop_nulls()
            values = []
            keep = []
            for text in distinct.to_list():  # once per distinct non-IPv4 address, not per record
                try:
                    ip = ipaddress.ip_address(text)
                except ValueError:
                    continue
                if ip.version == 6:
                    values.append(int(ip))
                    keep.append(text)
            if values:
                qhi, qlo = _split128(values)
                found = np.empty(len(values), np.int64)
                with _threads_for(len(values)):
                    _lookup_128(qhi, qlo, self.v6_hi, self.v6_lo, self.v6_labels, found)
                table = pl.DataFrame({"a": keep, "label": found})
                joined = pl.DataFrame({"a": other}).join(
                    table, on="a", how="left", maintain_order="left"
                )
                out[rest] = joined["label"].fill_null(NO_MATCH).to_numpy()
        return out


# ---------------------------------------------------------------------------------------------
# Domains: every suffix of the query, hashed right to left, probed in an open-addressing table

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_BITMAP_MAX_BITS = 23  # 2^23 bits = 1 MB: about an L2 cache
_CHUNK = 1 << 20  # names per pass of the domain lookup


@nb.njit(cache=True, inline="always")
def _lower(c):  # type: ignore[no-untyped-def]
    return c + 32 if 65 <= c <= 90 else c


@nb.njit(cache=True)
def _rev_hash(data, s, e):  # type: ignore[no-untyped-def]
    h = _FNV_OFFSET
    for p in range(e - 1, s - 1, -1):
        h = (h ^ np.uint64(_lower(data[p]))) * _FNV_PRIME
    return h


@nb.njit(cache=True)
def _build_table(vo, vd, size):  # type: ignore[no-untyped-def]
    table = np.full(size, -1, np.int64)
    mask = np.uint64(size - 1)
    for i in range(vo.shape[0] - 1):
        h = _rev_hash(vd, vo[i], vo[i + 1])
        slot = h & mask
        while table[slot] != -1:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = (np.int64(h >> np.uint64(33)) << 32) | i
    return table


@nb.njit(cache=True, inline="always")
def _bit_positions(h, shift):  # type: ignore[no-untyped-def]
    """Two bit positions from disjoint bits of the hash (the top ones, and the ones below)."""
    width = np.uint64(64) - shift
    return h >> shift, (h >> (shift - width)) & ((np.uint64(1) << width) - np.uint64(1))


@nb.njit(cache=True)
def _build_bitmap(vo, vd, bits, shift):  # type: ignore[no-untyped-def]
    """A two-probe Bloom filter of the indicator hashes, tested before the table is touched."""
    for i in range(vo.shape[0] - 1):
        b1, b2 = _bit_positions(_rev_hash(vd, vo[i], vo[i + 1]), shift)
        bits[b1 >> np.uint64(6)] |= np.uint64(1) << (b1 & np.uint64(63))
        bits[b2 >> np.uint64(6)] |= np.uint64(1) << (b2 & np.uint64(63))


@nb.njit(cache=True, inline="always")
def _name_end(qo, qd, i):  # type: ignore[no-untyped-def]
    """End of name ``i`` without its root dot."""
    e = qo[i + 1]
    if e > qo[i] and qd[e - 1] == 46:
        e -= 1
    return e


@nb.njit(cache=True, inline="always")
def _maybe(h, bits, shift):  # type: ignore[no-untyped-def]
    b1, b2 = _bit_positions(h, shift)
    return (
        (bits[b1 >> np.uint64(6)] >> (b1 & np.uint64(63)))
        & (bits[b2 >> np.uint64(6)] >> (b2 & np.uint64(63)))
        & np.uint64(1)
    )


@nb.njit(parallel=True, cache=True)
def _filter_names(qo, qd, bits, shift, counts):  # type: ignore[no-untyped-def]
    """How many suffixes of each name pass the filter: one pass over the bytes, hashing right
    to left, with no table read (most names have none)."""
    for i in nb.prange(qo.shape[0] - 1):
        s = qo[i]
        h = _FNV_OFFSET
        c = 0
        for p in range(_name_end(qo, qd, i) - 1, s - 1, -1):
            h = (h ^ np.uint64(_lower(qd[p]))) * _FNV_PRIME
            if (p == s or qd[p - 1] == 46) and _maybe(h, bits, shift):
                c += 1
        counts[i] = c


@nb.njit(parallel=True, cache=True)
def _probe(qo, qd, picked, slots, bits, shift, vo, vd, table, found):  # type: ignore[no-untyped-def]
    """For the picked names (some suffix passed the filter), the value each passing suffix is
    (verified byte for byte) or -1, from ``slots[x]`` on, in suffix order (right to left)."""
    mask = np.uint64(table.shape[0] - 1)
    for x in nb.prange(picked.shape[0]):
        i = picked[x]
        s = qo[i]
        e = _name_end(qo, qd, i)
        out = slots[x]
        h = _FNV_OFFSET
        for p in range(e - 1, s - 1, -1):
            h = (h ^ np.uint64(_lower(qd[p]))) * _FNV_PRIME
            if not ((p == s or qd[p - 1] == 46) and _maybe(h, bits, shift)):
                continue
            found[out] = -1
            slot = h & mask
            tag = np.int64(h >> np.uint64(33))
            while table[slot] != -1:
                entry = table[slot]
                cand = entry & 0xFFFFFFFF
                a = vo[cand]
                # the slot keeps 31 bits of the hash beside the index: most probes of a name
                # that is not listed end here, without touching the values' bytes
                if (entry >> 32) == tag and vo[cand + 1] - a == e - p:
                    same = True
                    for q in range(e - p):
                        if vd[a + q] != _lower(qd[p + q]):
                            same = False
                            break
                    if same:
                        found[out] = cand
                        break
                slot = (slot + np.uint64(1)) & mask
            out += 1


@dataclass
class DomainIndex:
    """Names matched against a set of domains and every parent of the name."""

    domains: pl.Series  # distinct, normalised (lower case, no root dot); label = position
    offsets: np.ndarray
    data: np.ndarray
    table: np.ndarray
    bits: np.ndarray  # bitmap of the values' hashes (top ``64 - shift`` bits)
    shift: np.uint64

    @classmethod
    def build(cls, domains: pl.Series) -> DomainIndex:
        values = (
            domains.drop_nulls()
            .str.to_lowercase()
            .str.strip_chars_end(".")
            .unique(maintain_order=True)
        )
        values = values.filter(values.str.len_bytes() > 0)
        offsets, data, _keep = _arrow_strings(values)
        size = 1 << max(4, int(2 * max(len(values), 1) - 1).bit_length())  # load factor <= 1/2
        nbits = min(_BITMAP_MAX_BITS, max(12, len(values).bit_length() + 3))
        bits = np.zeros(1 << (nbits - 6), np.uint64)
        shift = np.uint64(64 - nbits)
        _build_bitmap(offsets, data, bits, shift)
        return cls(
            values, offsets.copy(), data.copy(), _build_table(offsets, data, size), bits, shift
        )

    def lookup(self, names: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """(record position, domain label) of every hit; a name can hit itself and its parents."""
        qo, qd, _keep = _arrow_strings(names)
        n = len(qo) - 1
        if not len(self.domains) or not n:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        recs, vals = [], []
        with _threads_for(n):
            # in chunks, so the per-suffix arrays (~40 bytes a name) stay bounded
            for lo in range(0, n, _CHUNK):
                hi = min(n, lo + _CHUNK)
                r, v = self._lookup_chunk(qo[lo : hi + 1], qd, lo)
                recs.append(r)
                vals.append(v)
        return np.concatenate(recs), np.concatenate(vals)

    def _lookup_chunk(
        self, qo: np.ndarray, qd: np.ndarray, base: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Two passes: every name through the filter (hashing only), then the table for the few
        names with a suffix that passed; apart, each pass is a tight loop (as for IPv4)."""
        n = len(qo) - 1
        counts = np.empty(n, np.int64)
        _filter_names(qo, qd, self.bits, self.shift, counts)
        picked = np.flatnonzero(counts)
        per = counts[picked]
        slots = np.zeros(len(picked) + 1, np.int64)
        np.cumsum(per, out=slots[1:])
        found = np.empty(int(slots[-1]), np.int64)
        _probe(
            qo, qd, picked, slots, self.bits, self.shift, self.offsets, self.data, self.table,
            found,
        )  # fmt: skip
        hit = found >= 0
        return np.repeat(picked, per)[hit] + base, found[hit]


# ---------------------------------------------------------------------------------------------
# Records against the indicator table

HITS_SCHEMA = {
    "table": pl.String, "uid": pl.String, "ts": pl.Datetime("us", "UTC"), "orig_h": pl.String,
    "resp_h": pl.String, "where": pl.String, "seen": pl.String, "indicator": pl.String,
}  # fmt: skip

# At most this many indicators per observed value (the most specific first, then the most
# confident): a value listed by hundreds of feeds, or a name under many listed parents, still
# gives a bounded number of rows per record.
PER_VALUE = 16

_RECORD_COLS = ("uid", "ts", "orig_h", "resp_h", "resp_p")
_FINGERPRINTS = ("ja3", "ja3s", "ja4")


@dataclass(frozen=True)
class _Source:
    """One observable column of a lake table and the kind of indicator it is matched against."""

    table: str
    where: str  # the column as reported (``conn.resp_h``)
    kind: str  # addr | name | url | ja3 | ja3s | ja4
    columns: tuple[str, ...]  # what it reads from the table


_SOURCES = (
    _Source("conn", "orig_h", "addr", ("orig_h",)),
    _Source("conn", "resp_h", "addr", ("resp_h",)),
    _Source("dns", "query", "name", ("query",)),
    _Source("dns", "answers", "addr", ("answers",)),
    _Source("http", "host", "name", ("host",)),
    _Source("http", "url", "url", ("host", "uri")),
    _Source("ssl", "server_name", "name", ("server_name",)),
    *(_Source("ssl", f, f, (f,)) for f in _FINGERPRINTS),
)


def _kinds(types: set[str]) -> set[str]:
    """Observable kinds that indicator types are matched on."""
    out = {"addr"} if types & {"ip", "cidr"} else set()
    out |= {"name"} if "domain" in types else set()
    out |= {"url"} if "url" in types else set()
    return out | (types & set(_FINGERPRINTS))


def _raw(source: _Source, df: pl.DataFrame) -> tuple[pl.Series, np.ndarray | None]:
    """The source's values, one per row, and the record of each row when rows are not records
    (a DNS reply's answers, one row each)."""
    if source.where == "answers":
        rows = df.select(
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("_r"), pl.col("answers")
        ).explode("answers", keep_nulls=False, empty_as_null=False)
        return rows["answers"], rows["_r"].to_numpy()
    if source.kind == "url":
        host = pl.col("host").str.to_lowercase().str.strip_chars_end(".")
        return df.select((host + pl.col("uri").fill_null("/")).alias("url"))["url"], None
    return df[source.columns[0]], None


def _seen(source: _Source, values: pl.Series) -> pl.DataFrame:
    """(code, seen) of each distinct raw value: the spelling that is matched and reported (a
    host without port, a URL also without its query, a fingerprint in lower case)."""
    frame = pl.DataFrame({"code": pl.int_range(values.len(), dtype=pl.Int32, eager=True)})
    s = pl.col("seen")
    if source.where == "answers":  # names (CNAMEs) are not addresses
        return frame.with_columns(seen=values).filter(s.str.contains(r"^[0-9a-fA-F.:]+$"))
    if source.where == "host":
        norm = s.str.to_lowercase().str.strip_chars_end(".").str.replace(r":\d+$", "")
        return frame.with_columns(seen=values).with_columns(norm)
    if source.kind == "url":
        full = frame.with_columns(seen=values)
        bare = full.with_columns(s.str.replace(r"\?.*$", ""))
        return pl.concat([full, bare.filter(pl.col("seen") != values.gather(bare["code"]))])
    if source.kind in _FINGERPRINTS:
        return frame.with_columns(seen=values.str.to_lowercase())
    return frame.with_columns(seen=values)


# When a screen lets through more than this share of a column's rows (a feed listing 0.0.0.0/0),
# the exact path takes the whole column rather than a copy of most of it.
_MOSTLY_KEPT = 0.5


@dataclass
class _Matcher:
    """The indicators of one ``match()`` call, indexed once, matched against distinct values;
    with the screens (``mamori.intel.screen``) that pick the rows worth matching."""

    by_type: dict[str, pl.DataFrame]  # type -> (value, _i: row of the indicator table)
    cidr: CidrIndex | None
    domains: DomainIndex | None
    screens: dict[str, object]  # kind -> AddressScreen | NameScreen | UrlScreen

    @classmethod
    def build(cls, ind: pl.DataFrame, kinds: set[str]) -> _Matcher:
        from mamori.intel.screen import (  # (imports this module)
            AddressScreen,
            ExactAddressScreen,
            NameScreen,
            UrlScreen,
        )

        by_type = {  # only the two columns are split (not ids and the rest: a million strings)
            str(k[0]): v
            for k, v in ind.select("type", "value", "_i")
            .partition_by("type", as_dict=True, include_key=False)
            .items()
        }
        if "domain" in by_type:  # as the index compares them: lower case, no root dot
            by_type["domain"] = by_type["domain"].with_columns(
                pl.col("value").str.to_lowercase().str.strip_chars_end(".")
            )
        cidrs = by_type.get("cidr")
        doms = by_type.get("domain")
        ips = by_type.get("ip")

        def addresses() -> tuple[CidrIndex | None, AddressScreen | ExactAddressScreen | None]:
            if "addr" not in kinds:
                return None, None
            if cidrs is None and ips is not None:
                return None, ExactAddressScreen.build(ips["value"])
            cidr = CidrIndex.build(cidrs["value"]) if cidrs is not None else None
            return cidr, AddressScreen.build(cidr, ips["value"] if ips is not None else None)

        with ThreadPoolExecutor(1) as pool:  # the two indexes at once: both cores
            by_address = pool.submit(addresses)
            domains = (
                DomainIndex.build(doms["value"]) if "name" in kinds and doms is not None else None
            )
            cidr, address_screen = by_address.result()
        screens: dict[str, object] = {}
        if address_screen is not None:
            screens["addr"] = address_screen
        if domains is not None:
            screens["name"] = NameScreen(domains)
        if "url" in kinds and "url" in by_type:
            screens["url"] = UrlScreen.build(by_type["url"]["value"])
        return cls(by_type, cidr, domains, screens)

    def screened(self, source: _Source, df: pl.DataFrame) -> tuple[pl.Series, np.ndarray | None]:
        """The source's values on the rows its screen lets through, and the record of each
        (None: every row, in order)."""
        screen = self.screens.get(source.kind)
        if screen is None:
            return _raw(source, df)
        if source.where == "answers":  # a row per answer: screened after the explode
            raw, rec = _raw(source, df)
            keep = screen.rows(raw)  # type: ignore[attr-defined]
            if len(keep) > _MOSTLY_KEPT * raw.len():
                return raw, rec
            return raw.gather(keep), rec[keep]  # type: ignore[index]
        if source.kind == "url":
            rows = screen.rows(df["host"], df["uri"])  # type: ignore[attr-defined]
        elif source.kind == "name":
            rows = screen.rows(df[source.columns[0]], host=source.where == "host")  # type: ignore[attr-defined]
        else:
            rows = screen.rows(df[source.columns[0]])  # type: ignore[attr-defined]
        if len(rows) > _MOSTLY_KEPT * df.height:  # a broad range listed: no copy of the rows
            return _raw(source, df)
        raw, _ = _raw(source, df.select(source.columns)[rows])
        return raw, rows

    def _exact(self, seen: pl.DataFrame, kind: str, spec: int) -> pl.DataFrame | None:
        listed = self.by_type.get(kind)
        if listed is None:
            return None
        return seen.join(listed, left_on="seen", right_on="value").with_columns(
            _spec=pl.lit(spec, pl.Int32)
        )

    def hits(self, kind: str, seen: pl.DataFrame) -> pl.DataFrame:
        """(code, seen, _i, _spec) of every distinct value that names an indicator; ``_spec`` says
        how specific the match is (longer prefixes and parent domains rank first)."""
        parts: list[pl.DataFrame | None] = []
        if kind == "addr":
            parts.append(self._exact(seen, "ip", 1000))
            if self.cidr is not None:
                label = self.cidr.lookup(seen["seen"])
                hit = np.flatnonzero(label >= 0)
                found = seen[hit].with_columns(network=self.cidr.networks.gather(label[hit]))
                parts.append(
                    found.join(self.by_type["cidr"], left_on="network", right_on="value")
                    .with_columns(_spec=pl.col("network").str.extract(r"/(\d+)$").cast(pl.Int32))
                    .drop("network")
                )
        elif kind == "name" and self.domains is not None:
            rec, lab = self.domains.lookup(seen["seen"])
            found = seen[rec].with_columns(domain=self.domains.domains.gather(lab))
            parts.append(
                found.join(self.by_type["domain"], left_on="domain", right_on="value")
                .with_columns(_spec=pl.col("domain").str.len_bytes().cast(pl.Int32))
                .drop("domain")
            )
        elif kind == "url" or kind in _FINGERPRINTS:
            parts.append(self._exact(seen, kind, 1000))
        found_parts = [h.select("code", "seen", "_i", "_spec") for h in parts if h is not None]
        if not found_parts:
            return pl.DataFrame(
                schema={"code": pl.Int32, "seen": pl.String, "_i": pl.UInt32, "_spec": pl.Int32}
            )
        return pl.concat(found_parts)


# The indexes of the last few indicator tables matched, each with the (type, value) columns it
# was built from: a store matched again (patrol over several inputs, a web view, a case) reuses
# its indexes instead of rebuilding them (~0.5 CPU-s for a million indicators). A hit is decided
# by comparing those columns in full (~10 ms a million rows), never by a hash alone.
_CACHED = 2
_cache: list[tuple[pl.DataFrame, frozenset[str], _Matcher]] = []
_cache_lock = threading.Lock()


def _matcher_for(ind: pl.DataFrame, kinds: set[str]) -> _Matcher:
    """The matcher of these indicators, from the cache when the same (type, value) rows in the
    same order were indexed before (the matcher reads nothing else of them; ids, ports and
    confidence are read from ``ind`` on every call)."""
    key = ind.select("type", "value")
    with _cache_lock:
        entries = list(_cache)
    for k, ks, matcher in entries:
        if ks == kinds and k.height == key.height and k.equals(key):
            return matcher
    matcher = _Matcher.build(ind, kinds)
    with _cache_lock:
        _cache.insert(0, (key, frozenset(kinds), matcher))
        del _cache[_CACHED:]
    return matcher


def clear_cache() -> None:
    """Forget the cached indexes (a benchmark timing the cold path; memory back)."""
    with _cache_lock:
        _cache.clear()


def _capped(hits: pl.DataFrame, ind: pl.DataFrame, per_value: int) -> pl.DataFrame:
    """At most ``per_value`` indicators per distinct value: most specific, most confident, then
    in the order of the indicator table (sorted only when some value has more)."""
    if hits.height == 0 or np.bincount(hits["code"].to_numpy()).max() <= per_value:
        return hits.drop("_spec")
    conf = ind["confidence"].gather(hits["_i"]).cast(pl.Int32).fill_null(0)
    return (
        hits.with_columns(_conf=conf)
        .sort(["code", "_spec", "_conf", "_i"], descending=[False, True, True, False])
        .filter(pl.int_range(pl.len()).over("code") < per_value)
        .drop("_spec", "_conf")
    )


def _records(frames: dict[str, pl.LazyFrame], kinds: set[str]) -> dict[str, pl.DataFrame]:
    """The columns matching needs from each table, read once (the tables' other columns are
    never loaded)."""
    wanted: dict[str, list[str]] = {}
    for s in _SOURCES:
        if s.kind in kinds and s.table in frames:
            wanted.setdefault(s.table, list(_RECORD_COLS))
            wanted[s.table] += [c for c in s.columns if c not in wanted[s.table]]
    tables = list(wanted)
    collected = pl.collect_all([frames[t].select(wanted[t]) for t in tables])
    return dict(zip(tables, collected, strict=True))


def _take(series: pl.Series, rows: np.ndarray) -> pl.Series:
    """``series.gather(rows)`` for ascending ``rows``, a chunk at a time: Polars' gather over a
    column of many chunks (a lake table read from many files) costs ~10x more per row."""
    if series.n_chunks() == 1:
        return series.gather(rows)
    chunks = series.get_chunks()
    ends = np.cumsum([len(c) for c in chunks])
    cuts = np.searchsorted(rows, ends)
    parts, lo = [], 0
    for chunk, end, hi in zip(chunks, ends, cuts, strict=True):
        if hi > lo:
            parts.append(chunk.gather(rows[lo:hi] - (end - len(chunk))))
        lo = hi
    return pl.concat(parts) if parts else series.clear()


def _take_columns(table: pl.DataFrame, names: list[str], rows: np.ndarray) -> list[pl.Series]:
    """``_take`` of several columns at once: one gather per chunk for all of them where their
    chunks line up (a table read from Parquet: one chunk per row group in every column), instead
    of one per chunk and column (an exact-IP match on the 10 M-row lake ran 113 small Polars
    queries, most of them these gathers; 55 now)."""
    sub = table.select(names)
    lengths = [[len(c) for c in sub[n].get_chunks()] for n in names]
    if any(ls != lengths[0] for ls in lengths[1:]):
        return [_take(sub[n], rows) for n in names]
    ends = np.cumsum(lengths[0])
    cuts = np.searchsorted(rows, ends)
    parts, lo = [], 0
    for size, end, hi in zip(lengths[0], ends, cuts, strict=True):
        if hi > lo:
            local = pl.Series(rows[lo:hi] - (end - size))
            parts.append(sub.slice(int(end - size), size).select(pl.all().gather(local)))
        lo = hi
    taken = pl.concat(parts) if parts else sub.clear()
    return [taken[n] for n in names]


def match(
    indicators: pl.DataFrame, frames: dict[str, pl.LazyFrame], per_value: int = PER_VALUE
) -> pl.DataFrame:
    """Every (record, indicator) hit: the record's table, uid, ts, hosts, where it matched, what
    it saw, and the indicator id. Port constraints (STIX network-traffic, MISP ip-dst|port) are
    checked against the record's ``resp_p``.

    Each observable column is coded by distinct value first (a lake repeats its addresses and
    names: 10 M connections hold a few hundred thousand), the indicators are looked up once per
    distinct value, and rows are built only for the records whose value hit: memory follows the
    hits, not the records. At most ``per_value`` indicators are kept per observed value (the most
    specific, then the most confident), so a value listed by many feeds or a name under many
    listed parents does not multiply the rows."""
    if indicators.height == 0:
        return pl.DataFrame(schema=HITS_SCHEMA)
    ind = indicators.select("id", "type", "value", "port", "confidence").with_row_index("_i")
    kinds = _kinds(set(ind["type"].unique().to_list()))
    sources = [s for s in _SOURCES if s.kind in kinds and s.table in frames]
    if not sources:
        return pl.DataFrame(schema=HITS_SCHEMA)
    records = _records(frames, kinds)
    matcher = _matcher_for(ind, kinds)

    def coded(source: _Source) -> tuple[pl.Series, np.ndarray | None, np.ndarray, np.ndarray]:
        raw, rec = matcher.screened(source, records[source.table])
        return (raw, rec, *distinct_codes(raw))

    out: list[pl.DataFrame] = []
    with ThreadPoolExecutor(2) as pool:  # screen and code two columns at once (GIL-free)
        jobs = [pool.submit(coded, s) for s in sources]
        for source, job in zip(sources, jobs, strict=True):
            raw, rec, codes, first = job.result()
            hits = matcher.hits(source.kind, _seen(source, raw.gather(first)))
            if hits.height == 0:
                continue
            hits = _capped(hits, ind, per_value)
            hit = np.zeros(len(first) + 1, bool)  # the last entry answers code -1
            hit[hits["code"].to_numpy()] = True
            rows = np.flatnonzero(hit[codes])
            at = pl.DataFrame({
                "_rec": (rows if rec is None else rec[rows]).astype(np.uint32),
                "code": codes[rows],
            })  # fmt: skip
            table = records[source.table]
            # in record order (a hit's indicators in the order of ``hits``)
            found = at.join(hits, on="code").drop("code").sort("_rec", maintain_order=True)
            port = ind["port"].gather(found["_i"])
            if port.null_count() < port.len():  # a port constraint: the record's resp_p
                resp_p = _take(table["resp_p"], found["_rec"].to_numpy()).cast(pl.Int64)
                found = found.filter(port.is_null() | (resp_p == port.cast(pl.Int64)))
            if source.where == "answers":  # an answer listed twice in one reply is one hit
                found = found.unique(["_rec", "_i", "seen"], maintain_order=True)
            # only now the strings, and only for the hits (views: the gathers share the bytes)
            at_rec = found["_rec"].to_numpy()
            uid, ts, orig_h, resp_h = _take_columns(
                table, ["uid", "ts", "orig_h", "resp_h"], at_rec
            )
            out.append(
                pl.DataFrame({
                    "uid": uid,
                    "ts": ts,
                    "orig_h": orig_h,
                    "resp_h": resp_h,
                    "seen": found["seen"],
                    "indicator": ind["id"].gather(found["_i"]),
                }).with_columns(
                    table=pl.lit(source.table), where=pl.lit(f"{source.table}.{source.where}")
                )
            )  # fmt: skip
    if not out:
        return pl.DataFrame(schema=HITS_SCHEMA)
    return pl.concat([h.select(*HITS_SCHEMA) for h in out]).cast(HITS_SCHEMA)  # type: ignore[arg-type]
