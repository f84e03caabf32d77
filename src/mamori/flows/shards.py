"""Split a capture's connections across workers by a hash of their outermost flow.

Every worker reads the whole capture and decodes its own packets (``decode(batch, shard)`` skips
the plain packets of other shards with this same hash, ``sensors.pcap.shardhash``), then tracks
and analyses only the connections of its shard, so two cores share the per-connection work without
passing packets between processes. The hash must send every packet of a connection, in both
directions, and every packet of anything tunnelled inside it, to the same worker: it covers the
outermost layer's endpoints (address and port for TCP/UDP, address alone otherwise, where the
tracker's key pairs ICMP messages of different types) in an order-free way.

Every worker runs this over every row it decoded, so it is one compiled pass: the NumPy
version (kept in the tests as the reference) walked the parent chains with whole-batch ``where``
passes and cost as much as decoding.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mamori.jitcache import depends_on
from mamori.sensors.pcap.decode import OK, PacketColumns
from mamori.sensors.pcap.shardhash import endpoint_shard

OTHER_SHARD = 200  # ``status`` of rows another worker tracks; the tracker skips any non-OK row


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
    for i in range(parent.shape[0]):
        root = i
        while parent[root] >= 0:
            root = parent[root]
        out[i] = endpoint_shard(
            proto[root], sport[root], dport[root],
            src_hi[root], src_lo[root], dst_hi[root], dst_lo[root], n,
        )  # fmt: skip
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


# Helpers and constants of decode, shardhash compile into these kernels: a change there must
# recompile them too (Numba's cache sees only this file).
depends_on(__name__, "mamori.sensors.pcap.decode", "mamori.sensors.pcap.shardhash")
