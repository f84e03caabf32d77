"""Vectorised matching of indicators against lake records: joins and compiled lookups, no loop
per record in Python.

* IP addresses: a Polars join on the canonical text (the lake holds Zeek's canonical form).
* CIDR ranges: longest prefix wins. The ranges are flattened once into sorted, disjoint
  ``[start, next start)`` intervals, each labelled with the most specific range covering it; a
  lookup is then one binary search. IPv4 (uint32 in uint64) takes a compiled path that parses the
  address text straight from the Arrow buffer and narrows the search by a 2^20-entry table of the
  top 20 bits (a plain ``np.searchsorted`` of 10 M addresses into 2 M bounds is cache-bound at about
  2 M/s; the narrowed search stays in cache). IPv6 addresses are parsed once per distinct address
  and searched over (high, low) uint64 pairs.
* Domains: a name matches an indicator for itself or for any parent domain. The suffixes of each
  query are hashed right to left in one pass (FNV-1a over the reversed bytes, so every suffix's
  hash is a prefix of the same computation) and probed in an open-addressing table of the indicator
  values (slots hold 31 bits of the hash beside the index, so a miss rarely touches the
  values' bytes), each hit verified byte for byte.
* URLs (host + path, with or without the query) and JA3/JA3S/JA4: Polars joins.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numba as nb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

NO_MATCH = -1
# IPv4 lookups start from a table of the top 12 bits' first bound (4 MB of int32): with a
# million ranges a bucket holds a bound or two, so a lookup is about two memory reads.
_TOP_SHIFT = 12
_NOT_V4 = -2


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
    """Dotted quad in data[s:e] as an int, or -1 when it is not one."""
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
            octet = octet * 10 + (c - 48)
            digits += 1
        else:
            return -1
    if dots != 3 or digits == 0 or octet > 255:
        return -1
    return value * 256 + octet


@nb.njit(parallel=True, cache=True)
def _lookup_v4(offsets, data, bounds, labels, bucket, out):  # type: ignore[no-untyped-def]
    n = offsets.shape[0] - 1
    for i in nb.prange(n):
        v = _parse_v4(data, offsets[i], offsets[i + 1])
        if v < 0:
            out[i] = _NOT_V4
            continue
        top = v >> _TOP_SHIFT
        lo = bucket[top]
        hi = bucket[top + 1]
        # rightmost bound <= v; the intervals before this bucket end at index lo - 1
        while lo < hi:
            mid = (lo + hi) >> 1
            if bounds[mid] <= v:
                lo = mid + 1
            else:
                hi = mid
        k = lo - 1
        out[i] = labels[k] if k >= 0 else NO_MATCH


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
    v4_bounds: np.ndarray
    v4_labels: np.ndarray
    v4_bucket: np.ndarray
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
        bucket = np.searchsorted(
            blo, np.arange((1 << (32 - _TOP_SHIFT)) + 1, dtype=np.uint64) << np.uint64(_TOP_SHIFT)
        ).astype(np.int32)

        ranges6 = [ipaddress.ip_network(x, strict=False) for x in v6]
        shi, slo = _split128([int(r.network_address) for r in ranges6])
        ehi, elo = _split128([int(r.broadcast_address) for r in ranges6])
        plen = np.array([r.prefixlen for r in ranges6], np.int64)
        order6 = np.lexsort((plen, slo, shi))  # start ascending, shorter (enclosing) prefix first
        h6, l6, lab6 = _flatten(shi[order6], slo[order6], ehi[order6], elo[order6])
        v6_labels = np.where(lab6 >= 0, v6_pos[order6][lab6], NO_MATCH) if len(lab6) else lab6
        return cls(
            nets, blo, v4_labels.astype(np.int64), bucket, h6, l6, v6_labels.astype(np.int64)
        )

    def lookup(self, addresses: pl.Series) -> np.ndarray:
        """Label (position in ``networks``) of the longest range holding each address, or -1."""
        offsets, data = _arrow_strings(addresses)
        out = np.empty(len(offsets) - 1, np.int64)
        if len(self.v4_bounds):
            _lookup_v4(offsets, data, self.v4_bounds, self.v4_labels, self.v4_bucket, out)
        else:
            out[:] = _NOT_V4
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
def _scan(qo, qd, i, vo, vd, table, out_val, pos, write):  # type: ignore[no-untyped-def]
    s = qo[i]
    e = qo[i + 1]
    if e > s and qd[e - 1] == 46:  # root dot
        e -= 1
    mask = np.uint64(table.shape[0] - 1)
    h = _FNV_OFFSET
    hits = 0
    for p in range(e - 1, s - 1, -1):
        h = (h ^ np.uint64(_lower(qd[p]))) * _FNV_PRIME
        if p == s or qd[p - 1] == 46:
            slot = h & mask
            tag = np.int64(h >> np.uint64(33))
            while table[slot] != -1:
                entry = table[slot]
                cand = entry & 0xFFFFFFFF
                a = vo[cand]
                b = vo[cand + 1]
                # the slot keeps 31 bits of the hash beside the index: most probes of a name that
                # is not listed end here, without touching the values' bytes
                if (entry >> 32) == tag and b - a == e - p:
                    same = True
                    for k in range(e - p):
                        if vd[a + k] != _lower(qd[p + k]):
                            same = False
                            break
                    if same:
                        if write:
                            out_val[pos + hits] = cand
                        hits += 1
                        break
                slot = (slot + np.uint64(1)) & mask
    return hits


@nb.njit(parallel=True, cache=True)
def _domain_count(qo, qd, vo, vd, table, counts):  # type: ignore[no-untyped-def]
    dummy = np.empty(0, np.int64)
    for i in nb.prange(qo.shape[0] - 1):
        counts[i] = _scan(qo, qd, i, vo, vd, table, dummy, 0, False)


@nb.njit(parallel=True, cache=True)
def _domain_fill(qo, qd, vo, vd, table, starts, out_rec, out_val):  # type: ignore[no-untyped-def]
    for i in nb.prange(qo.shape[0] - 1):
        if starts[i + 1] > starts[i]:
            n = _scan(qo, qd, i, vo, vd, table, out_val, starts[i], True)
            for k in range(n):
                out_rec[starts[i] + k] = i


@dataclass
class DomainIndex:
    """Names matched against a set of domains and every parent of the name."""

    domains: pl.Series  # distinct, normalised (lower case, no root dot); label = position
    offsets: np.ndarray
    data: np.ndarray
    table: np.ndarray

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
        return cls(values, offsets.copy(), data.copy(), _build_table(offsets, data, size))

    def lookup(self, names: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """(record position, domain label) of every hit; a name can hit itself and its parents."""
        qo, qd = _arrow_strings(names)
        n = len(qo) - 1
        if not len(self.domains) or not n:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        counts = np.zeros(n, np.int64)
        _domain_count(qo, qd, self.offsets, self.data, self.table, counts)
        starts = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        rec = np.empty(starts[-1], np.int64)
        val = np.empty(starts[-1], np.int64)
        if starts[-1]:
            _domain_fill(qo, qd, self.offsets, self.data, self.table, starts, rec, val)
        return rec, val


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
        out.append(
            found.join(doms, left_on="domain", right_on="value")
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
