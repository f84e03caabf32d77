"""Split a capture's connections across workers by a hash of their outermost flow.

Every worker reads and decodes the whole capture (cheap, compiled) but tracks and analyses only
the connections of its shard, so two cores share the per-connection work without passing packets
between processes. The hash must send every packet of a connection, in both directions, and every
packet of anything tunnelled inside it, to the same worker: it covers the outermost layer's
endpoints (address and port for TCP/UDP, address alone otherwise, where the tracker's key pairs
ICMP messages of different types) in an order-free way.
"""

from __future__ import annotations

import numpy as np

from mamori.sensors.pcap.decode import OK, PacketColumns

OTHER_SHARD = 200  # ``status`` of rows another worker tracks; the tracker skips any non-OK row

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def shard_of(pk: PacketColumns, n: int) -> np.ndarray:
    """The worker (0..n-1) of every row, from the row's outermost packet."""
    parent = pk["parent"].astype(np.int64)
    root = np.arange(parent.shape[0], dtype=np.int64)
    up = parent.copy()
    while True:
        has = up >= 0
        if not has.any():
            break
        root = np.where(has, up, root)
        up = np.where(has, parent[np.maximum(up, 0)], -1)
    proto = pk["proto"][root].astype(np.uint64)
    ported = (proto == 6) | (proto == 17) | (proto == 132)
    with np.errstate(over="ignore"):
        sport = np.where(ported, pk["sport"][root].astype(np.uint64), np.uint64(0))
        dport = np.where(ported, pk["dport"][root].astype(np.uint64), np.uint64(0))
        a = _mix(_mix(pk["src_hi"][root] ^ sport) ^ pk["src_lo"][root])
        b = _mix(_mix(pk["dst_hi"][root] ^ dport) ^ pk["dst_lo"][root])
        h = _mix(a + b + proto)  # the sum is order-free: both directions land alike
    return (h % np.uint64(n)).astype(np.int64)


def keep_shard(pk: PacketColumns, k: int, n: int) -> None:
    """Mark the rows of other shards so the tracker passes over them (in place)."""
    if n <= 1:
        return
    status = pk["status"]
    other = (shard_of(pk, n) != k) & (status == OK)
    status[other] = OTHER_SHARD
