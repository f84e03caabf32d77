"""Zeek's ``likely_server_ports``: which side of a new connection is the server.

Stock Zeek fills the set from every port its default analysers register for, and uses it to flip the
roles of a connection whose first packet comes *from* a server port (a UDP reply, a SYN-ACK seen
before its SYN). The list below is what a Zeek 7.2 built without Spicy registers (so no QUIC, LDAP,
PostgreSQL, Redis or MQTT ports), the build ``../shared/data/zeek-reference`` was made with.
"""

from __future__ import annotations

import numpy as np

TCP_SERVER_PORTS: tuple[int, ...] = (
    21, 22, 25, 79, 80, 81, 88, 135, 139, 143, 443, 445, 465, 502, 563, 585, 587, 614, 631, 636,
    989, 990, 992, 993, 995, 1080, 1434, 2811, 3128, 3306, 3389, 5222, 5223, 5269, 6666, 6667, 6668,
    6669, 8000, 8080, 8888, 20000,
)  # fmt: skip

UDP_SERVER_PORTS: tuple[int, ...] = (
    53, 67, 68, 88, 123, 137, 161, 162, 443, 514, 1812, 2123, 2152, 3389, 3544, 4011, 4754, 4789,
    5060, 5072, 5353, 5355, 6081, 20000,
)  # fmt: skip


def server_port_table() -> np.ndarray:
    """A (2, 65536) boolean lookup: row 0 TCP, row 1 UDP, for the compiled tracker."""
    table = np.zeros((2, 65536), np.bool_)
    table[0, list(TCP_SERVER_PORTS)] = True
    table[1, list(UDP_SERVER_PORTS)] = True
    return table
