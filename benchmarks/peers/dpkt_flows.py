"""Peer: a plain dpkt loop building a dict of bidirectional 5-tuples (packets, bytes per flow).

Usage: python benchmarks/peers/dpkt_flows.py CAPTURE  -> prints the number of flows.
"""

from __future__ import annotations

import sys

import dpkt


def flows(path: str) -> dict[tuple, list[int]]:
    table: dict[tuple, list[int]] = {}
    with open(path, "rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            try:
                eth = dpkt.ethernet.Ethernet(buf)
            except (dpkt.dpkt.UnpackError, IndexError):
                continue
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            l4 = ip.data
            proto = ip.p if isinstance(ip, dpkt.ip.IP) else ip.nxt
            if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
                a, b = (ip.src, l4.sport), (ip.dst, l4.dport)
            else:
                a, b = (ip.src, 0), (ip.dst, 0)
            key = (proto, a, b) if a <= b else (proto, b, a)
            entry = table.get(key)
            if entry is None:
                table[key] = [1, len(buf)]
            else:
                entry[0] += 1
                entry[1] += len(buf)
    return table


if __name__ == "__main__":
    print(len(flows(sys.argv[1])))
