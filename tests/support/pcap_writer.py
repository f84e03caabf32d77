"""A small, independent pure-Python capture writer and packet builder for the sensor tests.

The reader and decoder under test are compiled kernels; testing them against captures built by the
same code would prove nothing, so this module shares no code with ``mamori.sensors``. It writes
classic pcap (either byte order, micro- or nanosecond magic) and pcapng (several sections and
interfaces, Enhanced and Simple Packet Blocks, any ``if_tsresol``) and builds the L2–L4 headers the
decoder must peel. Checksums are left at zero where the decoder never reads them: the decoder must
not depend on them, and a test that needs them valid can compute them itself.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# --------------------------------------------------------------------------------------- captures

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D


@dataclass(frozen=True, slots=True)
class Rec:
    """One capture record as a test expects the reader to return it."""

    ts_ns: int
    data: bytes
    wirelen: int | None = None  # None: equal to len(data)

    @property
    def orig(self) -> int:
        return len(self.data) if self.wirelen is None else self.wirelen


def classic_header(
    linktype: int, *, big_endian: bool = False, nanos: bool = False, snaplen: int = 262144
) -> bytes:
    """The 24-byte classic pcap file header."""
    order = ">" if big_endian else "<"
    magic = MAGIC_NS if nanos else MAGIC_US
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def classic_record(rec: Rec, *, big_endian: bool = False, nanos: bool = False) -> bytes:
    """One classic record header plus its data; the timestamp is cut to the file's resolution."""
    order = ">" if big_endian else "<"
    sec, ns = divmod(rec.ts_ns, 1_000_000_000)
    frac = ns if nanos else ns // 1000
    return struct.pack(order + "IIII", sec, frac, len(rec.data), rec.orig) + rec.data


def classic_pcap(
    records: Iterable[Rec],
    linktype: int = 1,
    *,
    big_endian: bool = False,
    nanos: bool = False,
    snaplen: int = 262144,
) -> bytes:
    """A whole classic pcap file."""
    out = [classic_header(linktype, big_endian=big_endian, nanos=nanos, snaplen=snaplen)]
    out += [classic_record(r, big_endian=big_endian, nanos=nanos) for r in records]
    return b"".join(out)


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


class PcapngWriter:
    """Builds a pcapng file block by block; every block method returns ``self`` to chain."""

    def __init__(self) -> None:
        self.blocks: list[bytes] = []
        self.order = "<"

    def _block(self, btype: int, body: bytes) -> PcapngWriter:
        body = _pad4(body)
        blen = 12 + len(body)
        self.blocks.append(
            struct.pack(self.order + "II", btype, blen) + body + struct.pack(self.order + "I", blen)
        )
        return self

    @staticmethod
    def _options(order: str, opts: Sequence[tuple[int, bytes]]) -> bytes:
        if not opts:
            return b""
        out = b"".join(struct.pack(order + "HH", code, len(val)) + _pad4(val) for code, val in opts)
        return out + struct.pack(order + "HH", 0, 0)

    def section(self, *, big_endian: bool = False) -> PcapngWriter:
        """A Section Header Block; later blocks use its byte order."""
        self.order = ">" if big_endian else "<"
        body = struct.pack(self.order + "IHHq", 0x1A2B3C4D, 1, 0, -1)
        return self._block(0x0A0D0D0A, body)

    def interface(
        self, linktype: int, *, tsresol: int | None = None, snaplen: int = 262144
    ) -> PcapngWriter:
        """An Interface Description Block; ``tsresol`` is the raw ``if_tsresol`` option byte."""
        opts = [(2, b"eth-test")]  # if_name first, so if_tsresol is not always the first option
        if tsresol is not None:
            opts.append((9, bytes([tsresol])))
        body = struct.pack(self.order + "HHI", linktype, 0, snaplen)
        return self._block(1, body + self._options(self.order, opts))

    def epb(self, iface: int, ticks: int, data: bytes, wirelen: int | None = None) -> PcapngWriter:
        """An Enhanced Packet Block carrying ``data``, stamped ``ticks`` of its interface."""
        orig = len(data) if wirelen is None else wirelen
        head = struct.pack(
            self.order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), orig
        )
        comment = self._options(self.order, [(1, b"a comment")])
        return self._block(6, head + _pad4(data) + comment)

    def spb(self, data: bytes, wirelen: int | None = None) -> PcapngWriter:
        """A Simple Packet Block (interface 0, no timestamp)."""
        orig = len(data) if wirelen is None else wirelen
        return self._block(3, struct.pack(self.order + "I", orig) + data)

    def other(self, btype: int, body: bytes = b"\0\0\0\0") -> PcapngWriter:
        """Any other block (name resolution, statistics, custom): readers must skip it."""
        return self._block(btype, body)

    def bytes(self) -> bytes:
        return b"".join(self.blocks)


def ticks_to_ns(ticks: int, tsresol: int | None) -> int:
    """Reference conversion of pcapng ticks to nanoseconds (floor), exact integer arithmetic."""
    if tsresol is None:
        tsresol = 6
    if tsresol & 0x80:
        return ticks * 1_000_000_000 // (1 << (tsresol & 0x7F))
    return ticks * 1_000_000_000 // 10 ** (tsresol & 0x7F)


# ------------------------------------------------------------------------------------- addresses


def ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def mapped_lo(addr: bytes) -> int:
    """The decoder's low 64-bit half for an address (IPv4 is stored IPv4-mapped)."""
    if len(addr) == 4:
        return (0xFFFF << 32) | int.from_bytes(addr, "big")
    return int.from_bytes(addr[8:], "big")


def mapped_hi(addr: bytes) -> int:
    return 0 if len(addr) == 4 else int.from_bytes(addr[:8], "big")


# ---------------------------------------------------------------------------------------- layers

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ether(etype: int, payload: bytes, dst: bytes = MAC_B, src: bytes = MAC_A) -> bytes:
    return dst + src + struct.pack(">H", etype) + payload


def vlan_tag(vid: int, etype: int, pcp: int = 0) -> bytes:
    """The 4 bytes following a 0x8100/0x88a8 ethertype: TCI then the next ethertype."""
    return struct.pack(">HH", (pcp << 13) | vid, etype)


def mpls(labels: Sequence[int], payload: bytes, ttl: int = 64) -> bytes:
    """A label stack (bottom-of-stack bit on the last label) followed by ``payload``."""
    out = b""
    for k, label in enumerate(labels):
        bottom = 1 if k == len(labels) - 1 else 0
        out += struct.pack(">I", (label << 12) | (bottom << 8) | ttl)
    return out + payload


def pppoe_session(ppp_proto: int, payload: bytes, session: int = 0x1234) -> bytes:
    """PPPoE session header (ver/type 0x11, code 0) plus the PPP protocol field."""
    return struct.pack(">BBHHH", 0x11, 0, session, len(payload) + 2, ppp_proto) + payload


def sll(proto: int, payload: bytes) -> bytes:
    """Linux cooked header v1 (16 bytes, protocol last)."""
    return struct.pack(">HHH8sH", 0, 1, 6, MAC_A + b"\0\0", proto) + payload


def sll2(proto: int, payload: bytes) -> bytes:
    """Linux cooked header v2 (20 bytes, protocol first)."""
    return struct.pack(">HHIHBB8s", proto, 0, 2, 1, 0, 6, MAC_A + b"\0\0") + payload


def null_loop(family: int, payload: bytes, *, big_endian: bool) -> bytes:
    """BSD loopback (DLT_NULL in either host order, or DLT_LOOP when big-endian)."""
    return struct.pack(">I" if big_endian else "<I", family) + payload


def ppp(proto: int, payload: bytes, *, addr_ctrl: bool = True) -> bytes:
    return (b"\xff\x03" if addr_ctrl else b"") + struct.pack(">H", proto) + payload


def _csum(data: bytes) -> int:
    data = _pad_even(data)
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pad_even(data: bytes) -> bytes:
    return data + b"\0" * (len(data) % 2)


def ipv4(
    src: bytes,
    dst: bytes,
    proto: int,
    payload: bytes,
    *,
    options: bytes = b"",
    ttl: int = 64,
    ident: int = 0x1234,
    frag_off: int = 0,
    more_frags: bool = False,
    total_length: int | None = None,
) -> bytes:
    """An IPv4 header (``options`` padded to 4 bytes; valid header checksum) plus ``payload``."""
    options = _pad4(options)
    ihl = (20 + len(options)) // 4
    tot = 20 + len(options) + len(payload) if total_length is None else total_length
    fo = (frag_off // 8) | (0x2000 if more_frags else 0)
    head = (
        struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, tot, ident, fo, ttl, proto, 0, src, dst)
        + options
    )
    head = head[:10] + struct.pack(">H", _csum(head)) + head[12:]
    return head + payload


def ipv6(
    src: bytes,
    dst: bytes,
    next_header: int,
    payload: bytes,
    *,
    hop_limit: int = 64,
    payload_length: int | None = None,
) -> bytes:
    plen = len(payload) if payload_length is None else payload_length
    return struct.pack(">IHBB16s16s", 6 << 28, plen, next_header, hop_limit, src, dst) + payload


def ipv6_opts(next_header: int, body_len: int = 6) -> bytes:
    """A hop-by-hop or destination options header of ``body_len + 2`` bytes (PadN filled)."""
    total = (body_len + 2 + 7) // 8 * 8
    pad = total - 2
    opts = bytes([1, pad - 2]) + b"\0" * (pad - 2) if pad >= 2 else b"\0" * pad
    return bytes([next_header, total // 8 - 1]) + opts


def ipv6_frag(next_header: int, offset: int, more: bool, ident: int) -> bytes:
    return struct.pack(">BBHI", next_header, 0, offset | (1 if more else 0), ident)


TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp(
    sport: int,
    dport: int,
    payload: bytes = b"",
    *,
    seq: int = 0,
    ack: int = 0,
    flags: int = TCP_ACK,
    win: int = 65535,
    options: bytes = b"",
) -> bytes:
    options = _pad4(options)
    off = (20 + len(options)) // 4
    return (
        struct.pack(">HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0, 0)
        + options
        + payload
    )


def udp(sport: int, dport: int, payload: bytes = b"", *, length: int | None = None) -> bytes:
    ulen = 8 + len(payload) if length is None else length
    return struct.pack(">HHHH", sport, dport, ulen, 0) + payload


def icmp(itype: int, code: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BBH", itype, code, 0) + payload


def gre(
    proto: int,
    payload: bytes,
    *,
    checksum: bool = False,
    key: int | None = None,
    seq: int | None = None,
) -> bytes:
    flags = (0x8000 if checksum else 0) | (0x2000 if key is not None else 0)
    flags |= 0x1000 if seq is not None else 0
    out = struct.pack(">HH", flags, proto)
    if checksum:
        out += b"\0\0\0\0"
    if key is not None:
        out += struct.pack(">I", key)
    if seq is not None:
        out += struct.pack(">I", seq)
    return out + payload


def vxlan(vni: int, frame: bytes) -> bytes:
    return struct.pack(">II", 0x08000000, vni << 8) + frame


def teredo_origin(port: int, addr: bytes) -> bytes:
    """Teredo origin indication (port and address obfuscated by XOR with all-ones)."""
    return struct.pack(">HH", 0, port ^ 0xFFFF) + bytes(b ^ 0xFF for b in addr)


def websocket_frame(payload: bytes, opcode: int = 1, mask: bytes = b"", fin: bool = True) -> bytes:
    """One RFC 6455 frame: FIN bit and opcode, the 7/16/64-bit length, the key and the payload
    masked with it when ``mask`` is given (as a client sends it)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([m | 127]) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if mask else payload
    return head + mask + masked
