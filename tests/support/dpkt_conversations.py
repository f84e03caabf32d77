"""A deliberately simple, independent Conversation builder (dpkt) for analyser unit tests.

It lets an analyser be tested on real captures without the production tracker, and doubles as a
second opinion: it shares no code with ``mamori.flows``. Originator = sender of the first packet (or of
the first pure SYN); TCP payload is ordered by sequence number with duplicates dropped.
"""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt

from mamori.flows.conversation import Conversation, Segment


def _addr(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def _ip_of(buf: bytes, linktype: int):
    if linktype == dpkt.pcap.DLT_EN10MB:
        eth = dpkt.ethernet.Ethernet(buf)
        return eth.data if isinstance(eth.data, (dpkt.ip.IP, dpkt.ip6.IP6)) else None
    if linktype in (dpkt.pcap.DLT_RAW, 101, 228, 229):
        v = buf[0] >> 4
        return dpkt.ip.IP(buf) if v == 4 else dpkt.ip6.IP6(buf) if v == 6 else None
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        sll = dpkt.sll.SLL(buf)
        return sll.data if isinstance(sll.data, (dpkt.ip.IP, dpkt.ip6.IP6)) else None
    return None


def conversations(path: Path, n_uid: int = 0) -> list[Conversation]:
    """Every TCP/UDP conversation of a capture with payload, in order of first packet."""
    with open(path, "rb") as fh:
        reader = dpkt.pcapng.Reader(fh) if path.suffix == ".pcapng" else dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        convs: dict[tuple, Conversation] = {}
        tcp_parts: dict[tuple, dict[bool, dict[int, tuple[float, bytes]]]] = {}
        for ts, buf in reader:
            try:
                ip = _ip_of(buf, linktype)
            except (dpkt.UnpackError, IndexError):
                continue
            if ip is None:
                continue
            l4 = ip.data
            if isinstance(l4, dpkt.tcp.TCP):
                proto = "tcp"
            elif isinstance(l4, dpkt.udp.UDP):
                proto = "udp"
            else:
                continue
            a = (_addr(ip.src), l4.sport)
            b = (_addr(ip.dst), l4.dport)
            key = (proto, *sorted([a, b]))
            conv = convs.get(key)
            if conv is None:
                orig, resp = a, b
                if proto == "tcp" and (l4.flags & 0x12) == 0x12:
                    orig, resp = b, a  # a SYN-ACK first: its receiver opened the connection
                n_uid += 1
                conv = Conversation(
                    f"C{n_uid:017d}", float(ts), orig[0], orig[1], resp[0], resp[1], proto
                )
                convs[key] = conv
                tcp_parts[key] = {True: {}, False: {}}
            is_orig = a == (conv.orig_h, conv.orig_p)
            data = bytes(l4.data)
            if not data:
                continue
            if proto == "udp":
                conv.segments.append(Segment(float(ts), is_orig, data))
            else:
                tcp_parts[key][is_orig].setdefault(l4.seq, (float(ts), data))
        for key, conv in convs.items():
            if conv.proto != "tcp":
                continue
            merged: list[Segment] = []
            for is_orig, parts in tcp_parts[key].items():
                # A reassembler delivers a segment only once every earlier byte has arrived:
                # its delivery time is the latest arrival among it and the segments before it.
                delivered = 0.0
                for seq in sorted(parts):
                    ts, data = parts[seq]
                    delivered = max(delivered, ts)
                    merged.append(Segment(delivered, is_orig, data))
            merged.sort(key=lambda s: s.ts)
            conv.segments = merged
        return [c for c in convs.values() if c.segments]
