"""Peer: the minimal Python pass of PERFORMANCE.md, the floor for any Python flow ingest.

Numba walks the classic-pcap records of the memory-mapped file and pulls the 5-tuple out of
Ethernet (VLAN/QinQ) + IPv4/IPv6 + TCP/UDP headers into NumPy columns; Polars groups them on the
bidirectional 5-tuple. No timeouts, no TCP state, no payload, no output file.

Usage: python benchmarks/peers/minimal_pass.py CAPTURE  -> prints the number of flows.
"""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
from numba import njit


@njit(cache=True)
def _u16(b, i):
    return (np.uint64(b[i]) << np.uint64(8)) | np.uint64(b[i + 1])


@njit(cache=True)
def _u64(b, i):
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(b[i + k])
    return v


@njit(cache=True)
def _caplen(b, off, swap):
    if swap:
        return (b[off + 8] << 24) | (b[off + 9] << 16) | (b[off + 10] << 8) | b[off + 11]
    return b[off + 8] | (b[off + 9] << 8) | (b[off + 10] << 16) | (b[off + 11] << 24)


@njit(cache=True)
def _count(b, swap):
    n = 0
    off = 24
    while off + 16 <= b.size:
        off += 16 + _caplen(b, off, swap)
        n += 1
    return n


@njit(cache=True)
def walk(b, swap):
    n_max = _count(b, swap)
    proto = np.zeros(n_max, np.uint8)
    ahi = np.zeros(n_max, np.uint64)
    alo = np.zeros(n_max, np.uint64)
    bhi = np.zeros(n_max, np.uint64)
    blo = np.zeros(n_max, np.uint64)
    ap = np.zeros(n_max, np.uint64)
    bp = np.zeros(n_max, np.uint64)
    size = np.zeros(n_max, np.uint32)
    n = 0
    off = 24
    while off + 16 <= b.size:
        cap = _caplen(b, off, swap)
        p = off + 16
        end = p + cap
        off = end
        if end > b.size:
            break
        if cap < 14:
            continue
        et = _u16(b, p + 12)
        q = p + 14
        while (et == 0x8100 or et == 0x88A8) and q + 4 <= end:
            et = _u16(b, q + 2)
            q += 4
        pr = 0
        if et == 0x0800 and q + 20 <= end:
            pr = b[q + 9]
            ihl = (b[q] & 15) * 4
            sa_hi = np.uint64(0)
            sa_lo = (_u16(b, q + 12) << np.uint64(16)) | _u16(b, q + 14)
            da_hi = np.uint64(0)
            da_lo = (_u16(b, q + 16) << np.uint64(16)) | _u16(b, q + 18)
            l4 = q + ihl
            frag = (_u16(b, q + 6) & np.uint64(0x1FFF)) != 0
        elif et == 0x86DD and q + 40 <= end:
            pr = b[q + 6]
            sa_hi = _u64(b, q + 8)
            sa_lo = _u64(b, q + 16)
            da_hi = _u64(b, q + 24)
            da_lo = _u64(b, q + 32)
            l4 = q + 40
            frag = False
        else:
            continue
        sp = np.uint64(0)
        dp = np.uint64(0)
        if (pr == 6 or pr == 17) and not frag and l4 + 4 <= end:
            sp = _u16(b, l4)
            dp = _u16(b, l4 + 2)
        proto[n] = pr
        size[n] = cap
        if (sa_hi, sa_lo, sp) <= (da_hi, da_lo, dp):
            ahi[n], alo[n], ap[n], bhi[n], blo[n], bp[n] = sa_hi, sa_lo, sp, da_hi, da_lo, dp
        else:
            ahi[n], alo[n], ap[n], bhi[n], blo[n], bp[n] = da_hi, da_lo, dp, sa_hi, sa_lo, sp
        n += 1
    return proto[:n], ahi[:n], alo[:n], ap[:n], bhi[:n], blo[:n], bp[:n], size[:n]


def flows(path: str) -> pl.DataFrame:
    buf = np.memmap(path, np.uint8, mode="r")
    magic = bytes(buf[:4])
    if magic not in (
        b"\xd4\xc3\xb2\xa1",
        b"\xa1\xb2\xc3\xd4",
        b"\x4d\x3c\xb2\xa1",
        b"\xa1\xb2\x3c\x4d",
    ):
        raise SystemExit(f"{path}: not a classic pcap")
    cols = walk(buf, magic[0] in (0xA1,))
    names = ["proto", "ahi", "alo", "ap", "bhi", "blo", "bp", "bytes"]
    df = pl.DataFrame(dict(zip(names, cols, strict=True)))
    return df.group_by(names[:-1]).agg(pl.len().alias("packets"), pl.col("bytes").sum())


if __name__ == "__main__":
    print(flows(sys.argv[1]).height)
