"""The hash that splits a capture's connections across ingest workers (``flows.shards``).

It lives beside the decoder because the decoder applies it too: a worker skips the plain packets
of other workers' connections while decoding, so it never writes their rows. One definition
serves both, so the two can never disagree on a packet's worker.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# UDP ports of the tunnels the decoder peels (``decode`` reads them from here): a UDP connection
# on one of them may carry other connections, so every worker tracks it (``tracked_everywhere``).
VXLAN_PORT = 4789
TEREDO_PORT = 3544
GTPU_PORT = 2152
_TUNNEL_UDP_PORTS = (VXLAN_PORT, TEREDO_PORT, GTPU_PORT)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def mix(x: np.uint64) -> np.uint64:
    """splitmix64's finaliser: every input bit moves every output bit."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@njit(cache=True, inline="always")
def endpoint_shard(
    proto: int,
    sport: int,
    dport: int,
    src_hi: np.uint64,
    src_lo: np.uint64,
    dst_hi: np.uint64,
    dst_lo: np.uint64,
    n: int,
) -> int:
    """The worker (0..n-1) of a packet's connection: an order-free hash of the packet's own
    endpoints (address and port for TCP, UDP and SCTP, address alone otherwise, where the
    tracker's key pairs ICMP messages of different types), whatever carried the packet."""
    zero = np.uint64(0)
    p = np.uint64(proto)
    sp, dp = zero, zero
    if p == 6 or p == 17 or p == 132:
        # Ports are int32 columns: reinterpret as the NumPy reference's uint64 cast does.
        sp = np.uint64(np.int64(sport))
        dp = np.uint64(np.int64(dport))
    a = mix(mix(src_hi ^ sp) ^ src_lo)
    b = mix(mix(dst_hi ^ dp) ^ dst_lo)
    h = mix(a + b + p)  # the sum is order-free: both directions land alike
    if n & (n - 1) == 0:  # a power of two (2 workers, 4 ...): the same value without a division
        return np.int64(h & np.uint64(n - 1))
    return np.int64(h % np.uint64(n))


@njit(cache=True, inline="always")
def tracked_everywhere(proto: int, sport: int, dport: int) -> bool:
    """Whether a packet's connection may carry tunnels whose packets the tracker ties to it: a
    UDP connection on a VXLAN, Teredo or GTP-U port (an inner connection's ``tunnel_parents``
    names the connection of the packet that carried it when it opened). A worker owns an inner
    connection by the inner packet's endpoints, and another may own its carrier (VXLAN's two
    directions travel in two UDP connections, each VTEP picking its own source port), so every
    worker tracks these connections, packet for packet as one process would, and only the
    owner writes them. A function of the connection's ports, never of a packet's payload, so
    every packet of a connection gets the same answer (a VXLAN packet without its I flag, which
    the decoder does not peel, is still tracked by all). IP-in-IP and GRE packets open no
    connection, so what they carry needs nothing from them."""
    return proto == 17 and (sport in _TUNNEL_UDP_PORTS or dport in _TUNNEL_UDP_PORTS)
