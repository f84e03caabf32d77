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
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
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


def _arrow_strings(series: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets, uint8 bytes) of a string column, nulls as empty strings (zero copy where
    Arrow allows)."""
    arr = series.fill_null("").to_arrow()
    arr = pc.cast(arr, pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
    return offsets, data


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
        offsets, data = _arrow_strings(addresses)
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
        offsets, data = _arrow_strings(values)
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
        qo, qd = _arrow_strings(names)
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

_RECORD = ("table", "uid", "ts", "orig_h", "resp_h", "where", "seen")
HITS_SCHEMA = {
    "table": pl.String, "uid": pl.String, "ts": pl.Datetime("us", "UTC"), "orig_h": pl.String,
    "resp_h": pl.String, "where": pl.String, "seen": pl.String, "indicator": pl.String,
}  # fmt: skip


def _observed(frames: dict[str, pl.LazyFrame]) -> dict[str, pl.DataFrame]:
    """Every observable of the lake as (table, uid, ts, orig_h, resp_h, where, seen), by kind."""
    base = [pl.col("uid"), pl.col("ts"), pl.col("orig_h"), pl.col("resp_h")]

    def obs(table: str, where: str, seen: pl.Expr) -> pl.LazyFrame:
        return frames[table].select(
            pl.lit(table).alias("table"), *base, pl.lit(f"{table}.{where}").alias("where"),
            seen.cast(pl.String).alias("seen"),
        ).filter(pl.col("seen").is_not_null() & (pl.col("seen") != ""))  # fmt: skip

    addr: list[pl.LazyFrame] = []
    names: list[pl.LazyFrame] = []
    urls: list[pl.LazyFrame] = []
    prints: list[pl.LazyFrame] = []
    if "conn" in frames:
        addr += [obs("conn", "orig_h", pl.col("orig_h")), obs("conn", "resp_h", pl.col("resp_h"))]
    if "dns" in frames:
        names.append(obs("dns", "query", pl.col("query")))
        answers = frames["dns"].select(
            pl.lit("dns").alias("table"), *base, pl.lit("dns.answers").alias("where"),
            pl.col("answers").alias("seen"),
        ).explode("seen", keep_nulls=False, empty_as_null=False)  # fmt: skip
        addr.append(answers.filter(pl.col("seen").str.contains(r"^[0-9a-fA-F.:]+$")))
    if "http" in frames:
        host = pl.col("host").str.to_lowercase().str.strip_chars_end(".")
        names.append(obs("http", "host", host.str.replace(r":\d+$", "")))
        uri = pl.col("uri").fill_null("/")
        urls.append(obs("http", "url", host + uri))
        urls.append(obs("http", "url", host + uri.str.replace(r"\?.*$", "")))
    if "ssl" in frames:
        names.append(obs("ssl", "server_name", pl.col("server_name")))
        for col in ("ja3", "ja3s", "ja4"):
            prints.append(
                obs("ssl", col, pl.col(col).str.to_lowercase()).with_columns(kind=pl.lit(col))
            )

    def cat(parts: list[pl.LazyFrame]) -> pl.DataFrame:
        return (
            pl.concat(parts, how="vertical").collect()
            if parts
            else pl.DataFrame(schema={k: v for k, v in HITS_SCHEMA.items() if k != "indicator"})
        )

    return {"addr": cat(addr), "name": cat(names), "url": cat(urls), "print": cat(prints)}


def match(indicators: pl.DataFrame, frames: dict[str, pl.LazyFrame]) -> pl.DataFrame:
    """Every (record, indicator) hit: the record's table, uid, ts, hosts, where it matched, what
    it saw, and the indicator id. Port constraints (STIX network-traffic, MISP ip-dst|port) are
    checked against ``resp_p`` where the record has one."""
    if indicators.height == 0:
        return pl.DataFrame(schema=HITS_SCHEMA)
    obs = _observed(frames)
    ind = indicators.select("id", "type", "value", "port")
    out: list[pl.DataFrame] = []
    cols = [*_RECORD, "indicator", "port"]

    addr = obs["addr"].with_row_index("_r")
    ips = ind.filter(pl.col("type") == "ip")
    if ips.height and addr.height:
        out.append(
            addr.join(ips, left_on="seen", right_on="value")
            .rename({"id": "indicator"})
            .select(*cols, "_r")
        )
    cidrs = ind.filter(pl.col("type") == "cidr")
    if cidrs.height and addr.height:
        index = CidrIndex.build(cidrs["value"])
        label = index.lookup(addr["seen"])
        hit = np.flatnonzero(label >= 0)
        found = addr[hit].with_columns(network=index.networks.gather(label[hit]))
        out.append(
            found.join(cidrs, left_on="network", right_on="value")
            .rename({"id": "indicator"})
            .select(*cols, "_r")
        )

    names = obs["name"]
    doms = ind.filter(pl.col("type") == "domain")
    if doms.height and names.height:
        index_d = DomainIndex.build(doms["value"])
        rec, lab = index_d.lookup(names["seen"])
        found = names[rec].with_columns(domain=index_d.domains.gather(lab))
        # the index holds values as it compares them (lower case, no root dot): join on the same
        norm = pl.col("value").str.to_lowercase().str.strip_chars_end(".")
        out.append(
            found.join(doms.with_columns(norm.alias("_norm")), left_on="domain", right_on="_norm")
            .rename({"id": "indicator"})
            .select(*cols)
            .with_columns(_r=pl.lit(None, pl.UInt32))
        )

    urls = ind.filter(pl.col("type") == "url")
    if urls.height and obs["url"].height:
        out.append(
            obs["url"]
            .unique()
            .join(urls, left_on="seen", right_on="value")
            .rename({"id": "indicator"})
            .select(*cols)
            .with_columns(_r=pl.lit(None, pl.UInt32))
        )

    prints = ind.filter(pl.col("type").is_in(["ja3", "ja3s", "ja4"]))
    if prints.height and obs["print"].height:
        out.append(
            obs["print"].join(prints, left_on=["kind", "seen"], right_on=["type", "value"])
            .rename({"id": "indicator"}).select(*cols).with_columns(_r=pl.lit(None, pl.UInt32))
        )  # fmt: skip
    if not out:
        return pl.DataFrame(schema=HITS_SCHEMA)
    hits = pl.concat([h.with_columns(pl.col("_r").cast(pl.UInt32)) for h in out], how="vertical")
    with_port = hits.filter(pl.col("port").is_not_null())
    if with_port.height:
        ports = (
            pl.concat(
                [
                    frames[t].select("uid", pl.col("resp_p").cast(pl.Int64))
                    for t in ("conn", "dns", "http", "ssl")
                    if t in frames
                ],
                how="vertical",
            )
            .unique("uid")
            .collect()
        )
        ok = with_port.join(ports, on="uid", how="left").filter(
            pl.col("resp_p").cast(pl.Int64) == pl.col("port").cast(pl.Int64)
        )
        hits = pl.concat(
            [hits.filter(pl.col("port").is_null()), ok.select(hits.columns)], how="vertical"
        )
    return hits.select(*HITS_SCHEMA).cast(HITS_SCHEMA).unique(maintain_order=True)  # type: ignore[arg-type]
