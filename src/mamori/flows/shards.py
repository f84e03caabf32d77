"""Split a capture's connections across workers by a hash of each packet's own endpoints.

Every worker reads the whole capture and decodes its own packets (``decode(batch, shard)`` skips
the plain packets of other shards with this same hash, ``sensors.pcap.shardhash``), then tracks
and analyses only the connections of its shard, so two cores share the per-connection work without
passing packets between processes. The hash must send every packet of a connection, in both
directions and whatever carried it, to the same worker: it is an order-free hash of the packet's
own endpoints (address and port for TCP, UDP and SCTP, address alone otherwise), which are what
the tracker keys the connection on.

A tunnelled packet is not sent where its carrier goes. VXLAN's two directions travel in two UDP
connections (each VTEP picks its own source port, as AWS traffic mirroring does), and a flow can
move between GRE tunnels: sharding by the outer packet split such inner connections in two. The
inner connection is one worker's, and its ``tunnel_parents`` needs the number of the connection
that carried its first packet, which another worker may own. So the UDP connections tunnels ride
in (``shardhash.tracked_everywhere``) are tracked by every worker, packet for packet as one process
tracks them, and written only by their owner: their rows stay OK here and are named ``foreign``,
and the connections they make are set aside when they end (``keep_owned``).

Every worker runs this over every row it decoded, so it is one compiled pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mamori.flows import tracker as T
from mamori.jitcache import depends_on
from mamori.sensors.pcap.decode import OK, PacketColumns
from mamori.sensors.pcap.shardhash import endpoint_shard, tracked_everywhere

OTHER_SHARD = 200  # ``status`` of rows another worker tracks; the tracker skips any non-OK row


@njit(cache=True)
def _shards(
    proto: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    src_hi: np.ndarray,
    src_lo: np.ndarray,
    dst_hi: np.ndarray,
    dst_lo: np.ndarray,
    n: int,
) -> np.ndarray:
    out = np.empty(proto.shape[0], np.int64)
    for i in range(proto.shape[0]):
        out[i] = endpoint_shard(
            proto[i], sport[i], dport[i], src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], n
        )
    return out


@njit(cache=True)
def _keep(
    status: np.ndarray,
    proto: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    src_hi: np.ndarray,
    src_lo: np.ndarray,
    dst_hi: np.ndarray,
    dst_lo: np.ndarray,
    k: int,
    n: int,
    foreign: np.ndarray,
) -> int:
    """Marks other workers' rows; returns how many foreign ones there are, listed in
    ``foreign`` if it has room (a batch rarely has any: no array is made for none). Run again
    over the same rows it lists the same ones and marks nothing more."""
    m = 0
    for i in range(status.shape[0]):
        if status[i] != OK:
            continue
        pr, sp, dp = proto[i], sport[i], dport[i]
        if endpoint_shard(pr, sp, dp, src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], n) == k:
            continue
        if tracked_everywhere(pr, sp, dp):
            if m < foreign.shape[0]:
                foreign[m] = i
            m += 1
        else:
            status[i] = OTHER_SHARD
    return m


@njit(cache=True, inline="always")
def _foreign_ended(state: np.ndarray, i: int, k: int, n: int) -> bool:
    pr, op, rp = state[i, T.C_PROTO], state[i, T.C_OP], state[i, T.C_RP]
    return tracked_everywhere(pr, op, rp) and endpoint_shard(
        pr, op, rp,
        np.uint64(state[i, T.C_OHI]), np.uint64(state[i, T.C_OLO]),
        np.uint64(state[i, T.C_RHI]), np.uint64(state[i, T.C_RLO]), n,
    ) != k  # fmt: skip


@njit(cache=True)
def keep_owned(
    state: np.ndarray, hist: np.ndarray, hist_len: np.ndarray, size: np.ndarray, k: int, n: int
) -> int:
    """Moves the ended connections worker k of n owns to the front of the tracker's output rows
    (in place) and returns how many there are: every connection but another worker's carriers
    of tunnels, which every worker tracks. Those are swapped with owned rows from the end, not
    cut out: most batches end one or two, and copying the batch's rows around them cost more
    than the rest of this change (0.17 CPU-s a shard on the workload)."""
    lo, hi = 0, state.shape[0] - 1
    if n <= 1:
        return hi + 1
    while True:
        while lo <= hi and not _foreign_ended(state, lo, k, n):
            lo += 1
        while lo <= hi and _foreign_ended(state, hi, k, n):
            hi -= 1
        if lo >= hi:
            return lo
        for c in range(state.shape[1]):
            state[lo, c], state[hi, c] = state[hi, c], state[lo, c]
        for c in range(hist.shape[1]):
            hist[lo, c], hist[hi, c] = hist[hi, c], hist[lo, c]
        for c in range(size.shape[1]):
            size[lo, c], size[hi, c] = size[hi, c], size[lo, c]
        hist_len[lo], hist_len[hi] = hist_len[hi], hist_len[lo]
        lo += 1
        hi -= 1


def shard_of(pk: PacketColumns, n: int) -> np.ndarray:
    """The worker (0..n-1) of every row's connection, from the row's own endpoints."""
    return _shards(
        pk["proto"], pk["sport"], pk["dport"],
        pk["src_hi"], pk["src_lo"], pk["dst_hi"], pk["dst_lo"], n,
    )  # fmt: skip


_NONE = np.empty(0, np.int64)


def keep_shard(pk: PacketColumns, k: int, n: int) -> np.ndarray:
    """Mark the rows of other workers' connections so the tracker passes over them (in place),
    except rows of connections every worker tracks, which are returned (row indices, ascending):
    tracked here for the tunnels they carry, owned elsewhere."""
    if n <= 1:
        return _NONE
    cols = (
        pk["status"], pk["proto"], pk["sport"], pk["dport"],
        pk["src_hi"], pk["src_lo"], pk["dst_hi"], pk["dst_lo"], k, n,
    )  # fmt: skip
    m = _keep(*cols, _NONE)
    if m == 0:
        return _NONE
    foreign = np.empty(m, np.int64)
    _keep(*cols, foreign)  # again, to list them: the other workers' rows are marked already
    return foreign


# Helpers and constants of decode, shardhash and tracker compile into these kernels: a change
# there must recompile them too (Numba's cache sees only this file).
depends_on(
    __name__, "mamori.sensors.pcap.decode", "mamori.sensors.pcap.shardhash", "mamori.flows.tracker"
)
