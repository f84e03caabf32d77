"""Screens: which lake rows could name an indicator at all, decided per row in one compiled pass
over the Arrow string views, before anything is coded, joined or gathered.

Most records hit nothing (a lake of 15 M records gave 0.5 M hits against a million indicators), so
``match()`` screens every observable column first and runs its exact matching (coding by distinct
value, the indexes, the joins) only on the rows a screen lets through. A screen may let through a
row that then hits nothing (a false positive costs one slow-path row); it must never stop a row
that would hit: each screen reads exactly the text the exact path matches, normalised the same
way, and lets through anything it does not fully understand (non-ASCII, unusual spellings).

* Addresses: a bitmap of address blocks (``2^BLOCK_BITS`` blocks, 8 MB, so it stays in the last
  level cache) with a bit set for every block that a listed range covers in part or whole, or
  that holds a listed address. A row that parses as a canonical dotted quad (as ``ipaddress``
  spells it) in a clear block cannot hit: no range covers it, and no listed address is its text.
  Anything else (IPv6, junk) passes to the exact path. A store of addresses without ranges
  (``ExactAddressScreen``) needs no parse at all: a listed address can only be hit by its own
  text, so each row's text is hashed straight from its view and looked up in a set of the listed
  texts' hashes (a blocked Bloom filter first).
* Names (DNS queries, TLS SNI, HTTP hosts): the domain index's own Bloom filter over every
  suffix at a label boundary, hashed right to left exactly as the index hashes them; HTTP hosts
  first lose their port and trailing dots as ``match()`` normalises them.
* URLs: a Bloom filter of the listed URLs' bytes, tested on the lower-cased host followed by the
  URI, and on the same up to the first ``?`` (the URL without its query).

The kernels hold no GIL and are single-threaded: ``match()`` runs two columns at once.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba as nb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from mamori.intel.match import (
    _FNV_OFFSET,
    _FNV_PRIME,
    _MIX,
    CidrIndex,
    DomainIndex,
    _arrow_strings,
    _bytes_hash,
    _fmix,
    _lower,
    _maybe,
    _parse_all_v4,
    _parse_v4,
    _view_start,
)
from mamori.jitcache import depends_on

BLOCK_BITS = 26  # 2^26 blocks of 64 addresses: 8 MB of bits
# Answers remembered per view (a direct-mapped table of 2^14 views, 512 kB: near the core). Equal
# views are equal strings: up to 12 bytes a view holds the string itself, beyond it says where the
# bytes lie (buffer, offset, length), so a column read from Parquet dictionary pages repeats its
# views as its values repeat, and a repeat costs no parse and no read of the string's bytes. A
# view's buffer number is the chunk's own: the table lives for one chunk.
_MEMO_BITS = 14
_MEMO = 1 << _MEMO_BITS


@dataclass
class _Chunk:
    """One Arrow chunk of a string column, read in place (no rechunk, no copy): ``views`` as
    (n, 2) uint64 and as bytes (``vbytes``, 16 a row: a string of up to 12 bytes is bytes 4 to
    16 of its view), the data buffers spanned by one byte array (``data``, each buffer's start in
    ``base``; the span starts and ends on a word boundary, so ``words`` sees the same bytes as
    aligned words, each of which lies on a page of the buffers), the validity bits (``valid``,
    from bit ``bit0``; empty when nothing is null)."""

    views: np.ndarray
    vbytes: np.ndarray
    data: np.ndarray
    base: np.ndarray
    valid: np.ndarray
    bit0: int
    owner: object  # the Arrow array owning the memory

    @property
    def words(self) -> np.ndarray:
        return self.data.view(np.uint64)

    @property
    def args(self) -> tuple[object, ...]:
        return self.views, self.vbytes, self.data, self.base, self.valid, self.bit0


def _chunks(series: pl.Series) -> Iterator[_Chunk]:
    """The column's chunks as ``_Chunk``s (string views, as Polars keeps strings)."""
    for part in series.cast(pl.String).get_chunks():
        arr = part.to_arrow(compat_level=pl.CompatLevel.newest())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if not pa.types.is_string_view(arr.type):
            arr = pc.cast(arr, pa.string_view())
        n = len(arr)
        if not n:
            continue
        bufs = arr.buffers()
        views = np.frombuffer(bufs[1], np.uint64).reshape(-1, 2)[arr.offset : arr.offset + n]
        valid = (  # read-only either way: one compiled kernel for columns with and without nulls
            np.frombuffer(bufs[0], np.uint8)
            if arr.null_count and bufs[0] is not None
            else np.frombuffer(b"", np.uint8)
        )
        data_bufs = [b for b in bufs[2:] if b is not None and b.size]
        if data_bufs:  # one byte array over every data buffer (only their own bytes are read)
            lo = min(b.address for b in data_bufs) & ~7
            hi = (max(b.address + b.size for b in data_bufs) + 7) & ~7  # whole words: same pages
            data = np.ctypeslib.as_array((ctypes.c_uint8 * (hi - lo)).from_address(lo))
            base = np.array([(b.address - lo) if b is not None else 0 for b in bufs[2:]], np.int64)
        else:
            data, base = np.zeros(16, np.uint8), np.zeros(1, np.int64)
        vbytes = views.reshape(-1).view(np.uint8)
        yield _Chunk(views, vbytes, data, base, valid, arr.offset, arr)


def _rows(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


@nb.njit(cache=True, inline="always")
def _length(views, valid, bit0, i):  # type: ignore[no-untyped-def]
    """Byte length of row ``i``, -1 when null."""
    if valid.shape[0]:
        b = bit0 + i
        if not (valid[b >> 3] >> (b & 7)) & 1:
            return -1
    return np.int64(views[i, 0] & np.uint64(0xFFFFFFFF))


# ---- addresses -------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True)
def _set_blocks(bounds, labels, shift, bits):  # type: ignore[no-untyped-def]
    """A bit for every block that a labelled interval touches."""
    n = bounds.shape[0]
    top = np.int64(1) << 32
    for k in range(n):
        if labels[k] < 0:
            continue
        end = bounds[k + 1] if k + 1 < n else top
        for b in range(bounds[k] >> shift, ((end - 1) >> shift) + 1):
            bits[b >> 6] |= np.uint64(1) << np.uint64(b & 63)


@nb.njit(cache=True, nogil=True)
def _set_addresses(values, shift, bits):  # type: ignore[no-untyped-def]
    for v in values:
        if v >= 0:
            b = v >> shift
            bits[b >> 6] |= np.uint64(1) << np.uint64(b & 63)


@nb.njit(cache=True, inline="always")
def _v4_block(arr, s, n, shift):  # type: ignore[no-untyped-def]
    """The block of arr[s:s + n] when it is a canonical dotted quad (``_parse_v4``), else -1."""
    value = _parse_v4(arr, s, s + n)
    return value >> shift if value >= 0 else -1


@nb.njit(cache=True, nogil=True)
def _v4_blocks(views, vbytes, data, data_base, valid, bit0, shift, blocks):  # type: ignore[no-untyped-def]
    """First pass: each row's block, -1 for a row that is not a canonical dotted quad (it may
    hit), -2 for null or empty (it cannot). No bitmap reads here: a loop of parsing and a loop
    of independent bitmap reads each run faster apart (the reads' cache misses overlap)."""
    memo = np.zeros((_MEMO, 4), np.uint64)  # view (two words), its block; 32 bytes a slot
    nulls = valid.shape[0] > 0
    for i in range(views.shape[0]):
        w0, w1 = views[i, 0], views[i, 1]
        n = _length(views, valid, bit0, i) if nulls else np.int64(w0 & np.uint64(0xFFFFFFFF))
        if n <= 0:
            blocks[i] = -2
            continue
        slot = ((w0 ^ (w1 * _MIX)) * _MIX) >> np.uint64(64 - _MEMO_BITS)
        if memo[slot, 0] == w0 and memo[slot, 1] == w1:  # (a zero view has length 0: no row)
            blocks[i] = np.int32(np.int64(memo[slot, 2]))
            continue
        if n <= 12:
            b = _v4_block(vbytes, i * 16 + 4, n, shift)
        else:
            b = _v4_block(data, _view_start(views, data_base, i), n, shift)
        blocks[i] = b
        memo[slot, 0], memo[slot, 1], memo[slot, 2] = w0, w1, np.uint64(np.int64(b))


@nb.njit(cache=True, nogil=True)
def _v4_keep(blocks, bits, keep):  # type: ignore[no-untyped-def]
    """Second pass: a row may hit when it is not a canonical dotted quad or its block is set."""
    for i in range(blocks.shape[0]):
        b = blocks[i]
        if b >= 0:
            keep[i] = (bits[b >> 6] >> np.uint64(b & 63)) & np.uint64(1) != 0
        else:
            keep[i] = b == -1


@dataclass
class AddressScreen:
    """Blocks of the IPv4 space that a listed range or address touches."""

    bits: np.ndarray
    shift: int

    @classmethod
    def build(cls, cidr: CidrIndex | None, ips: pl.Series | None) -> AddressScreen:
        shift = 32 - BLOCK_BITS
        bits = np.zeros(1 << (BLOCK_BITS - 6), np.uint64)
        if cidr is not None:
            _set_blocks(cidr.v4_bounds, cidr.v4_labels, shift, bits)
        if ips is not None and ips.len():
            # a listed address that is not a canonical dotted quad can only equal a record text
            # that is not one either, and those rows pass anyway
            offsets, data, _keep = _arrow_strings(ips)
            values = np.empty(len(offsets) - 1, np.int64)
            _parse_all_v4(offsets, data, values)
            _set_addresses(values, shift, bits)
        return cls(bits, shift)

    def rows(self, series: pl.Series) -> np.ndarray:
        """Positions of the rows that may hit (int64, ascending)."""
        parts, start = [], 0
        for c in _chunks(series):
            blocks = np.empty(len(c.views), np.int32)
            _v4_blocks(*c.args, self.shift, blocks)
            keep = np.empty(len(c.views), np.bool_)
            _v4_keep(blocks, self.bits, keep)
            parts.append(np.flatnonzero(keep) + start)
            start += len(c.views)
        return _rows(parts)


_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@nb.njit(cache=True, nogil=True)
def _texts(views, words, data_base, valid, bit0, bloom, bshift, table, tmask, rows, out):  # type: ignore[no-untyped-def]
    """Hash the text of every row; with ``rows``, write to ``out`` the rows whose hash is in
    ``table`` and return how many, else write each row's hash (0 for null or empty) to ``out``
    (int64 bits). One body for both, so the listed texts and the rows are hashed alike.

    The hash: up to 12 bytes from the view's two words (bytes past the string cleared, whatever
    the writer left there, by masks rather than branches: lengths vary from row to row), up to
    16 from two words of the data and the length, beyond from every byte; made odd (0 marks an
    empty slot). Shifts stay below 64 (a 64-bit shift by 64 leaves the word as it is on x86):
    a mask of ``k`` bytes is ``~((ALL << 4k) << 4k)``. Each row then costs one read of a filter word (~16 bits a listed text, near the
    core); only the ~1 % that pass read the table of hashes."""
    k = 0
    nulls = valid.shape[0] > 0
    for i in range(views.shape[0]):
        v0 = views[i, 0]
        v1 = views[i, 1]
        n = _length(views, valid, bit0, i) if nulls else np.int64(v0 & np.uint64(0xFFFFFFFF))
        if n <= 0:
            if not rows:
                out[i] = 0
            continue
        if n <= 12:  # in the view: masks, not branches, clear the bytes past the text
            k0 = min(n, 4)
            k1 = n - k0
            w0 = v0 & ~((_ALL << np.uint64(16 + 4 * k0)) << np.uint64(16 + 4 * k0))
            w1 = v1 & ~((_ALL << np.uint64(4 * k1)) << np.uint64(4 * k1))
        elif n <= 16:  # an address of 13-16 bytes: the (up to) three words that hold it
            st = _view_start(views, data_base, i)
            q = st >> 3
            e = (st + n - 1) >> 3  # the last word with bytes of the text
            r = np.uint64(8 * (st & 7))
            a, b, c = words[q], words[q + 1], words[min(q + 2, e)]
            w0 = ((a >> r) | ((b << (np.uint64(63) - r)) << np.uint64(1))) + np.uint64(n)
            w1 = (b >> r) | ((c << (np.uint64(63) - r)) << np.uint64(1))
            k2 = n - 8
            w1 &= ~((_ALL << np.uint64(4 * k2)) << np.uint64(4 * k2))
        else:
            w0 = _bytes_hash(words, _view_start(views, data_base, i), n)
            w1 = np.uint64(n)
        h = _fmix((w0 * _MIX) ^ w1) | np.uint64(1)
        if not rows:
            out[i] = np.int64(h)
            continue
        w = bloom[h >> np.uint64(bshift)]
        if ((w >> (h & np.uint64(63))) & (w >> ((h >> np.uint64(6)) & np.uint64(63)))) & np.uint64(
            1
        ) == 0:
            continue
        slot = (h >> np.uint64(12)) & tmask
        while True:
            t = table[slot]
            if t == h:
                out[k] = i
                k += 1
                break
            if t == 0:
                break
            slot = (slot + np.uint64(1)) & tmask
    return k


@nb.njit(cache=True, nogil=True)
def _fill_texts(hashes, bloom, bshift, table, tmask):  # type: ignore[no-untyped-def]
    for h in hashes:
        if h == 0:
            continue
        w = h >> np.uint64(bshift)
        bloom[w] |= (np.uint64(1) << (h & np.uint64(63))) | (
            np.uint64(1) << ((h >> np.uint64(6)) & np.uint64(63))
        )
        slot = (h >> np.uint64(12)) & tmask
        while table[slot] != 0 and table[slot] != h:
            slot = (slot + np.uint64(1)) & tmask
        table[slot] = h


_NO_BLOOM = np.zeros(1, np.uint64)
_PIECE = 1 << 20  # rows a thread screens at a time
_WORKERS = min(os.cpu_count() or 1, 4)


def _chunk_words(c: _Chunk) -> tuple[object, ...]:
    return c.views, c.words, c.base, c.valid, c.bit0


@dataclass
class ExactAddressScreen:
    """Listed addresses and no ranges: a row may hit only if its text is one of them.

    Exact addresses match by text equality (``_Matcher._exact``), so a set of the listed texts is
    the whole test: a row is hashed straight from its Arrow view (an address of up to 12 bytes is
    the view itself; a longer one is read from the data buffer), tested against a blocked Bloom
    filter (one word a text, two bits in it) and, when it passes, probed in an open-addressing
    table of the listed hashes. No parse, no copy, no row index carried through a join: faster
    than Polars' semi-join on the same column. A hash collision lets a row through that then
    hits nothing in the exact path: never a lost hit."""

    bloom: np.ndarray  # 2^k words
    bshift: int  # a hash's top k bits pick its word
    table: np.ndarray  # odd hashes, 0 for empty; at most half full
    tmask: np.uint64

    @classmethod
    def build(cls, ips: pl.Series) -> ExactAddressScreen:
        parts = []
        for c in _chunks(ips):
            h = np.empty(len(c.views), np.int64)
            _texts(*_chunk_words(c), _NO_BLOOM, 0, _NO_BLOOM, np.uint64(0), False, h)
            parts.append(h.view(np.uint64))
        hashes = np.concatenate(parts) if parts else np.zeros(0, np.uint64)  # the table dedups
        wbits = max(6, (max(len(hashes), 1) * 16 // 64 - 1).bit_length())  # ~16 bits a text
        tbits = max(6, (2 * max(len(hashes), 1) - 1).bit_length())
        bloom = np.zeros(1 << wbits, np.uint64)
        table = np.zeros(1 << tbits, np.uint64)
        tmask = np.uint64((1 << tbits) - 1)
        _fill_texts(hashes, bloom, 64 - wbits, table, tmask)
        return cls(bloom, 64 - wbits, table, tmask)

    def rows(self, series: pl.Series) -> np.ndarray:
        """Positions of the rows whose text is listed (int64, ascending). A large column goes in
        pieces of ``_PIECE`` rows to a few threads (the kernel holds no GIL): the two address
        columns of conn cost unequally (the responders' longer texts are read from the data),
        so a thread per column would leave a core idle while the longer one finishes."""
        pieces, start = [], 0
        for c in _chunks(series):
            n = len(c.views)
            pieces += [(c, lo, min(n, lo + _PIECE), start + lo) for lo in range(0, n, _PIECE)]
            start += n

        def run(piece: tuple[_Chunk, int, int, int]) -> np.ndarray:
            c, lo, hi, at = piece
            out = np.empty(hi - lo, np.int64)
            k = _texts(
                c.views[lo:hi], c.words, c.base, c.valid, c.bit0 + lo,
                self.bloom, self.bshift, self.table, self.tmask, True, out,
            )  # fmt: skip
            return out[:k] + at

        if len(pieces) < 2:
            return _rows([run(p) for p in pieces])
        with ThreadPoolExecutor(_WORKERS) as pool:
            return _rows(list(pool.map(run, pieces)))


# ---- names -----------------------------------------------------------------------------------


@nb.njit(cache=True, inline="always")
def _name_may_hit(arr, s, e, host, bits, shift):  # type: ignore[no-untyped-def]
    """Whether a suffix of the name arr[s:e] at a label boundary passes the domain index's filter
    (hashed as ``_filter_names`` hashes: right to left, ASCII folded, one root dot off). An HTTP
    host (``host``) is first spelt as ``match()`` spells it: trailing dots stripped, then a
    ``:port`` removed; one with a byte outside ASCII passes (Unicode lower-casing is more than
    ASCII folding)."""
    if host:
        for p in range(s, e):
            if arr[p] >= 128:
                return True
        while e > s and arr[e - 1] == 46:
            e -= 1
        p = e - 1
        while p >= s and 48 <= arr[p] <= 57:
            p -= 1
        if p >= s and p < e - 1 and arr[p] == 58:  # ':' and at least one digit after it
            e = p
    if e > s and arr[e - 1] == 46:
        e -= 1
    h = _FNV_OFFSET
    for p in range(e - 1, s - 1, -1):
        h = (h ^ np.uint64(_lower(arr[p]))) * _FNV_PRIME
        if (p == s or arr[p - 1] == 46) and _maybe(h, bits, shift):
            return True
    return False


@nb.njit(cache=True, nogil=True)
def _screen_names(views, vbytes, data, data_base, valid, bit0, bits, shift, host, keep):  # type: ignore[no-untyped-def]
    nulls = valid.shape[0] > 0
    for i in range(views.shape[0]):
        n = (
            _length(views, valid, bit0, i)
            if nulls
            else np.int64(views[i, 0] & np.uint64(0xFFFFFFFF))
        )
        if n <= 0:
            keep[i] = False
        elif n <= 12:
            s = i * 16 + 4
            keep[i] = _name_may_hit(vbytes, s, s + n, host, bits, shift)
        else:
            s = _view_start(views, data_base, i)
            keep[i] = _name_may_hit(data, s, s + n, host, bits, shift)


@dataclass
class NameScreen:
    """The domain index's filter, applied to a column of names."""

    index: DomainIndex

    def rows(self, series: pl.Series, host: bool = False) -> np.ndarray:
        """Positions of the rows that may hit (``host``: the column holds HTTP hosts)."""
        parts, start = [], 0
        for c in _chunks(series):
            keep = np.empty(len(c.views), np.bool_)
            _screen_names(*c.args, self.index.bits, self.index.shift, host, keep)
            parts.append(np.flatnonzero(keep) + start)
            start += len(c.views)
        return _rows(parts)


# ---- URLs ------------------------------------------------------------------------------------


@nb.njit(cache=True, inline="always")
def _bloom_bits(h, mask):  # type: ignore[no-untyped-def]
    h = _fmix(h)
    return h & mask, (h >> np.uint64(32)) & mask


@nb.njit(cache=True, inline="always")
def _bloom_test(h, bits, mask):  # type: ignore[no-untyped-def]
    b1, b2 = _bloom_bits(h, mask)
    return (
        (bits[b1 >> np.uint64(6)] >> (b1 & np.uint64(63)))
        & (bits[b2 >> np.uint64(6)] >> (b2 & np.uint64(63)))
        & np.uint64(1)
    ) != 0


@nb.njit(cache=True, nogil=True)
def _url_bloom(offsets, data, bits, mask):  # type: ignore[no-untyped-def]
    for i in range(offsets.shape[0] - 1):
        h = _FNV_OFFSET
        for p in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[p])) * _FNV_PRIME
        b1, b2 = _bloom_bits(h, mask)
        bits[b1 >> np.uint64(6)] |= np.uint64(1) << (b1 & np.uint64(63))
        bits[b2 >> np.uint64(6)] |= np.uint64(1) << (b2 & np.uint64(63))


@nb.njit(cache=True, inline="always")
def _url_part(arr, s, e, fold, h, cut, hit, bits, mask):  # type: ignore[no-untyped-def]
    """Feed arr[s:e] into the URL's hash (``fold``: ASCII lower case, for the host); at the first
    ``?`` of the URL, test the URL so far (the URL without its query). Returns (hash, seen a
    ``?``, some test passed, odd: a line feed or, in a host, a byte outside ASCII)."""
    for p in range(s, e):
        c = arr[p]
        if c == 10 or (fold and c >= 128):
            return h, cut, hit, True
        if c == 63 and not cut:
            cut = True
            hit = hit or _bloom_test(h, bits, mask)
        h = (h ^ np.uint64(_lower(c) if fold else c)) * _FNV_PRIME
    return h, cut, hit, False


@nb.njit(cache=True, inline="always")
def _host_end(arr, s, e):  # type: ignore[no-untyped-def]
    while e > s and arr[e - 1] == 46:
        e -= 1
    return e


@nb.njit(cache=True, nogil=True)
def _screen_urls(
    hv, hb, hd, hbase, hvalid, hbit0, uv, ub, ud, ubase, uvalid, ubit0, bits, mask, keep
):  # type: ignore[no-untyped-def]
    """``keep[i]``: lower(host) without trailing dots followed by the URI (``/`` when null), or
    the same up to its first ``?``, passes the filter; or the row holds what the exact path
    reads otherwise (a host outside ASCII, a line feed, which the query-stripping pattern does
    not cross). A null host is no URL."""
    for i in range(hv.shape[0]):
        n = _length(hv, hvalid, hbit0, i)
        if n < 0:
            keep[i] = False
            continue
        h = _FNV_OFFSET
        if n <= 12:
            s = i * 16 + 4
            h, cut, hit, odd = _url_part(hb, s, _host_end(hb, s, s + n), True, h, False, False,
                                         bits, mask)  # fmt: skip
        else:
            s = _view_start(hv, hbase, i)
            h, cut, hit, odd = _url_part(hd, s, _host_end(hd, s, s + n), True, h, False, False,
                                         bits, mask)  # fmt: skip
        m = _length(uv, uvalid, ubit0, i)
        if odd:
            keep[i] = True
            continue
        if m < 0:
            h = (h ^ np.uint64(47)) * _FNV_PRIME  # '/'
        elif m <= 12:
            s = i * 16 + 4
            h, cut, hit, odd = _url_part(ub, s, s + m, False, h, cut, hit, bits, mask)
        else:
            s = _view_start(uv, ubase, i)
            h, cut, hit, odd = _url_part(ud, s, s + m, False, h, cut, hit, bits, mask)
        keep[i] = odd or hit or _bloom_test(h, bits, mask)


@dataclass
class UrlScreen:
    """A Bloom filter of the listed URLs (two bits of ~16 a value: about 1 % of others pass)."""

    bits: np.ndarray
    mask: np.uint64

    @classmethod
    def build(cls, urls: pl.Series) -> UrlScreen:
        nbits = 1 << max(12, (16 * max(urls.len(), 1) - 1).bit_length())
        bits = np.zeros(nbits // 64, np.uint64)
        offsets, data, _keep = _arrow_strings(urls.drop_nulls())
        mask = np.uint64(nbits - 1)
        _url_bloom(offsets, data, bits, mask)
        return cls(bits, mask)

    def rows(self, host: pl.Series, uri: pl.Series) -> np.ndarray:
        """Positions of the rows whose URL may be listed."""
        if [len(c) for c in host.get_chunks()] != [len(c) for c in uri.get_chunks()]:
            host, uri = host.rechunk(), uri.rechunk()
        parts, start = [], 0
        for h, u in zip(_chunks(host), _chunks(uri), strict=True):
            keep = np.empty(len(h.views), np.bool_)
            _screen_urls(*h.args, *u.args, self.bits, self.mask, keep)
            parts.append(np.flatnonzero(keep) + start)
            start += len(h.views)
        return _rows(parts)


# Helpers and constants of match compile into these kernels: a change there must
# recompile them too (Numba's cache sees only this file).
depends_on(__name__, "mamori.intel.match")
