"""Split a capture's connections across workers by a hash of their outermost flow.

Every worker reads and decodes the whole capture (cheap, compiled) but tracks and analyses only
the connections of its shard, so two cores share the per-connection work without passing packets
between processes. The hash must send every packet of a connection, in both directions, and every
packet of anything tunnelled inside it, to the same worker: it covers the outermost layer's
endpoints (address and port for TCP/UDP, address alone otherwise, where the tracker's key pairs
ICMP messages of different types) in an order-free way.

Every worker runs this over every row of the capture, so it is one compiled pass: the NumPy
version (kept in the tests as the reference) walked the parent chains with whole-batch ``where``
passes and cost as much as decoding.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mamori.sensors.pcap.decode import OK, PacketColumns

OTHER_SHARD = 200  # ``status`` of rows another worker tracks; the tracker skips any non-OK row

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _mix(x: np.uint64) -> np.uint64:
    """splitmix64's finaliser: every input bit moves every output bit."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@njit(cache=True)
def _shards(
    parent: np.ndarray,
    proto: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    src_hi: np.ndarray,
    src_lo: np.ndarray,
    dst_hi: np.ndarray,
    dst_lo: np.ndarray,
    n: int,
) -> np.ndarray:
    out = np.empty(parent.shape[0], np.int64)
    zero = np.uint64(0)
    for i in range(parent.shape[0]):
        root = i
        while parent[root] >= 0:
            root = parent[root]
        p = np.uint64(proto[root])
        sp, dp = zero, zero
        if p == 6 or p == 17 or p == 132:
            # Ports are int32 columns: reinterpret as the NumPy version's uint64 cast does.
            sp = np.uint64(np.int64(sport[root]))
            dp = np.uint64(np.int64(dport[root]))
        a = _mix(_mix(src_hi[root] ^ sp) ^ src_lo[root])
        b = _mix(_mix(dst_hi[root] ^ dp) ^ dst_lo[root])
        h = _mix(a + b + p)  # the sum is order-free: both directions land alike
        out[i] = np.int64(h % np.uint64(n))
    return out


def shard_of(pk: PacketColumns, n: int) -> np.ndarray:
    """The worker (0..n-1) of every row, from the row's outermost packet."""
    return _shards(
        pk["parent"], pk["proto"], pk["sport"], pk["dport"],
        pk["src_hi"], pk["src_lo"], pk["dst_hi"], pk["dst_lo"], n,
    )  # fmt: skip


def keep_shard(pk: PacketColumns, k: int, n: int) -> None:
    """Mark the rows of other shards so the tracker passes over them (in place)."""
    if n <= 1:
        return
    status = pk["status"]
    other = (shard_of(pk, n) != k) & (status == OK)
    status[other] = OTHER_SHARD
