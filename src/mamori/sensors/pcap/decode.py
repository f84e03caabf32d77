"""Decode link, network and transport headers of a record batch into NumPy columns.

One compiled pass over the batch; every header field a later stage needs becomes a column, so flow
tracking and protocol recognition never touch a Python object per packet. Tunnels are peeled the way
Zeek peels them: the outer packet keeps its own row (a VXLAN or Teredo UDP packet is still a packet
of its UDP connection), and each encapsulated packet gets one more row whose ``parent`` points at the
row that carried it.

Addresses are 128-bit, split into two unsigned 64-bit halves; IPv4 addresses are stored IPv4-mapped
(``::ffff:a.b.c.d``) so one key layout serves both families.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from mamori.jitcache import depends_on
from mamori.sensors.pcap.reader import RecordBatch
from mamori.sensors.pcap.shardhash import (
    GTPU_PORT,
    TEREDO_PORT,
    VXLAN_PORT,
    endpoint_shard,
    tracked_everywhere,
)

# Link types (LINKTYPE_* values as they appear in pcap/pcapng headers).
LINK_NULL = 0  # BSD loopback, address family in host byte order
LINK_ETHERNET = 1
LINK_PPP = 9
LINK_RAW = 101
LINK_RAW_OLD_12 = 12
LINK_RAW_OLD_14 = 14
LINK_LOOP = 108  # OpenBSD loopback, family in network byte order
LINK_PPP_SERIAL = 50
LINK_SLL = 113
LINK_IPV4 = 228
LINK_IPV6 = 229
LINK_SLL2 = 276
# Every link type ``_link_layer`` decodes (a test holds the two together): packets of any other
# are counted and told to the user (``notices``), not analysed.
DECODED_LINKTYPES = frozenset(
    {
        LINK_NULL, LINK_ETHERNET, LINK_PPP, LINK_RAW, LINK_RAW_OLD_12, LINK_RAW_OLD_14, LINK_LOOP,
        LINK_PPP_SERIAL, LINK_SLL, LINK_IPV4, LINK_IPV6, LINK_SLL2,
    }
)  # fmt: skip

# ``status`` column: why a row has no (complete) transport header.
OK = 0
UNKNOWN_LINK = 1  # link type we do not decode
NOT_IP = 2  # ARP, LLDP, STP, …: not part of any connection
TRUNCATED = 3  # snaplen cut or damaged header
BAD_IP = 4  # impossible IP header (version, header length, total length)
FRAGMENT = 5  # an IP fragment: reassembled by the caller before use

# ``tunnel`` column: this row's payload carried another packet (the next row, depth + 1).
TUN_NONE = 0
TUN_IP = 1  # IPv4/IPv6 in IP
TUN_GRE = 2
TUN_VXLAN = 3
TUN_TEREDO = 4
TUN_GTP = 5

MAX_DEPTH = 4  # deeper encapsulation than this is treated as payload

IPV4_MAPPED_HI = np.uint64(0)
IPV4_MAPPED_LO_PREFIX = np.uint64(0xFFFF) << np.uint64(32)

COLUMNS: dict[str, type] = {
    "rec": np.int32,  # index of the record in the batch
    "parent": np.int32,  # row that carried this one (-1 for the outermost packet)
    "depth": np.uint8,
    "status": np.uint8,
    "tunnel": np.uint8,
    "ip_ver": np.uint8,
    "proto": np.uint8,
    "src_hi": np.uint64,
    "src_lo": np.uint64,
    "dst_hi": np.uint64,
    "dst_lo": np.uint64,
    "ip_off": np.int64,  # offset of the IP header in the batch buffer
    "ip_len": np.int32,  # IP total length as the header states it (Zeek's ip bytes)
    "ip_id": np.int32,
    "frag_off": np.int32,  # fragment offset in bytes
    "more_frags": np.uint8,
    "ttl": np.uint8,
    "sport": np.int32,  # for ICMP: type
    "dport": np.int32,  # for ICMP: code
    "flags": np.uint8,  # TCP flags
    "seq": np.int64,
    "ack": np.int64,
    "win": np.int32,
    "pay_off": np.int64,  # offset of the transport payload in the buffer
    "pay_cap": np.int32,  # payload bytes actually captured
    "pay_len": np.int32,  # payload bytes per the IP/UDP headers (can exceed pay_cap)
    "vlan": np.int32,  # outermost 802.1Q VLAN id, -1 if none
}


@dataclass(slots=True)
class PacketColumns:
    """Decoded rows of one batch; ``cols[name]`` are equal-length arrays (see COLUMNS)."""

    cols: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.cols["rec"].shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]


@nb.njit(cache=True, inline="always")
def _be16(buf: np.ndarray, p: int) -> int:
    return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])


@nb.njit(cache=True, inline="always")
def _be32(buf: np.ndarray, p: int) -> int:
    return (
        (np.int64(buf[p]) << 24)
        | (np.int64(buf[p + 1]) << 16)
        | (np.int64(buf[p + 2]) << 8)
        | np.int64(buf[p + 3])
    )


@nb.njit(cache=True, inline="always")
def _be64(buf: np.ndarray, p: int) -> np.uint64:
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(buf[p + k])
    return v


# Layer codes for the decode loop.
_L_ETHER = 0
_L_IP = 1  # version from the first nibble
_L_SLL = 2
_L_SLL2 = 3
_L_NULL = 4
_L_LOOP = 5
_L_PPP = 6
_L_UNKNOWN = 7


@nb.njit(cache=True)
def _link_layer(linktype: int) -> int:
    if linktype == LINK_ETHERNET:
        return _L_ETHER
    if linktype in (LINK_RAW, LINK_RAW_OLD_12, LINK_RAW_OLD_14, LINK_IPV4, LINK_IPV6):
        return _L_IP
    if linktype == LINK_SLL:
        return _L_SLL
    if linktype == LINK_SLL2:
        return _L_SLL2
    if linktype == LINK_NULL:
        return _L_NULL
    if linktype == LINK_LOOP:
        return _L_LOOP
    if linktype in (LINK_PPP, LINK_PPP_SERIAL):
        return _L_PPP
    return _L_UNKNOWN


@nb.njit(cache=True)
def _ethertype_to_ip(
    buf: np.ndarray, p: int, end: int, etype: int, vlan_out: np.ndarray, row: int
) -> int:
    """Follow VLAN/QinQ, MPLS and PPPoE from an ethertype to the IP header's offset.

    Returns the IP header offset, ``-1`` for a non-IP frame, ``-2`` for a truncated header.
    """
    while True:
        if etype == 0x0800 or etype == 0x86DD:
            return p
        if etype == 0x8100 or etype == 0x88A8 or etype == 0x9100:
            if p + 4 > end:
                return -2
            if vlan_out[row] < 0:
                vlan_out[row] = _be16(buf, p) & 0x0FFF
            etype = _be16(buf, p + 2)
            p += 4
        elif etype == 0x8847 or etype == 0x8848:  # MPLS: pop labels to bottom of stack
            while True:
                if p + 4 > end:
                    return -2
                bottom = buf[p + 2] & 1
                p += 4
                if bottom:
                    break
            if p >= end:
                return -2
            v = buf[p] >> 4
            if v == 4 or v == 6:
                return p
            return -1
        elif etype == 0x8864:  # PPPoE session stage
            if p + 8 > end:
                return -2
            ppp = _be16(buf, p + 6)
            p += 8
            if ppp == 0x0021 or ppp == 0x0057:
                return p
            return -1
        else:
            return -1


@nb.njit(cache=True)
def decode_batch(
    buf: np.ndarray,
    data_off: np.ndarray,
    caplen: np.ndarray,
    linktype: np.ndarray,
    rec: np.ndarray,
    parent: np.ndarray,
    depth: np.ndarray,
    status: np.ndarray,
    tunnel: np.ndarray,
    ip_ver: np.ndarray,
    proto: np.ndarray,
    src_hi: np.ndarray,
    src_lo: np.ndarray,
    dst_hi: np.ndarray,
    dst_lo: np.ndarray,
    ip_off: np.ndarray,
    ip_len: np.ndarray,
    ip_id: np.ndarray,
    frag_off: np.ndarray,
    more_frags: np.ndarray,
    ttl: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    flags: np.ndarray,
    seq: np.ndarray,
    ack: np.ndarray,
    win: np.ndarray,
    pay_off: np.ndarray,
    pay_cap: np.ndarray,
    pay_len: np.ndarray,
    vlan: np.ndarray,
    shard_k: int = 0,
    shard_n: int = 1,
) -> int:
    """Fill one row per packet (more for tunnels); returns the number of rows written.

    With ``shard_n > 1`` a plain packet (no tunnel, complete headers, not a fragment) whose
    endpoints hash to another worker than ``shard_k`` gets no row, unless its connection is one
    every worker tracks (``shardhash.tracked_everywhere``): its row is written, then taken back
    (see ``decode``).
    """
    n = data_off.shape[0]
    cap = rec.shape[0]
    row = 0
    for i in range(n):
        off = data_off[i]
        end = off + caplen[i]
        layer = _link_layer(linktype[i])
        par = -1
        d = 0
        while True:
            if row >= cap:
                return row
            # The row's fields are gathered in locals and each column is written once, below:
            # defaults stored first and overwritten cost a second store per column and packet,
            # which the compiler cannot drop (it cannot tell the columns apart). The row index is
            # unsigned so no store pays Numba's negative-index wrap-around.
            r = np.uint64(row)
            row += 1
            st = OK
            tun = TUN_NONE
            ver = 0
            pr = 0
            s_hi = np.uint64(0)
            s_lo = np.uint64(0)
            d_hi = np.uint64(0)
            d_lo = np.uint64(0)
            ipo = -1
            iplen = 0
            ident = 0
            fro = 0
            mf = 0
            hops = 0
            sp = 0
            dp = 0
            tcpf = 0
            sq = 0
            ak = 0
            wn = 0
            poff = end
            pcap = 0
            plen = 0
            vlan[r] = vlan[par] if par >= 0 else -1
            inner = -1
            inner_layer = _L_IP
            pe = 0
            plain = False  # a complete, untunnelled row: one another worker may own
            while True:  # the row's headers, outside in; a ``break`` ends them
                # ---- link layer → offset of the IP header
                p = off
                if layer == _L_ETHER:
                    if p + 14 > end:
                        st = TRUNCATED
                        break
                    if buf[p + 12] == 0x89 and buf[p + 13] == 0x03:
                        # Cisco FabricPath: a 16-byte outer header before the real Ethernet frame.
                        if p + 16 + 14 > end:
                            st = TRUNCATED
                            break
                        p += 16
                    etype = _be16(buf, p + 12)
                    if etype <= 1500:
                        # 802.3 length field: the frame ends there (trailing bytes are padding);
                        # only LLC/SNAP carrying an ethertype leads to IP.
                        end = min(end, p + 14 + etype)
                        q = p + 14
                        if (
                            q + 8 <= end
                            and buf[q] == 0xAA
                            and buf[q + 1] == 0xAA
                            and buf[q + 2] == 0x03
                        ):
                            p = _ethertype_to_ip(buf, q + 8, end, _be16(buf, q + 6), vlan, r)
                        else:
                            p = -1
                    else:
                        p = _ethertype_to_ip(buf, p + 14, end, etype, vlan, r)
                elif layer == _L_SLL:
                    if p + 16 > end:
                        st = TRUNCATED
                        break
                    p = _ethertype_to_ip(buf, p + 16, end, _be16(buf, p + 14), vlan, r)
                elif layer == _L_SLL2:
                    if p + 20 > end:
                        st = TRUNCATED
                        break
                    p = _ethertype_to_ip(buf, p + 20, end, _be16(buf, p), vlan, r)
                elif layer == _L_NULL or layer == _L_LOOP:
                    if p + 4 > end:
                        st = TRUNCATED
                        break
                    # DLT_NULL stores the family in the capturing host's byte order: accept either.
                    fam = (
                        np.int64(buf[p])
                        if (layer == _L_NULL and buf[p] != 0)
                        else np.int64(buf[p + 3])
                    )
                    if fam == 2 or fam == 24 or fam == 28 or fam == 30:
                        p = p + 4
                    else:
                        p = -1
                elif layer == _L_PPP:
                    if p + 2 > end:
                        st = TRUNCATED
                        break
                    if buf[p] == 0xFF and buf[p + 1] == 0x03:
                        p += 2
                    if p + 2 > end:
                        st = TRUNCATED
                        break
                    pp = _be16(buf, p)
                    p = p + 2 if (pp == 0x0021 or pp == 0x0057) else -1
                elif layer == _L_IP:
                    pass
                else:
                    st = UNKNOWN_LINK
                    break
                if p == -1:
                    st = NOT_IP
                    break
                if p < 0 or p >= end:
                    st = TRUNCATED
                    break

                # ---- network layer
                v = buf[p] >> 4
                ipo = p
                if v == 4:
                    if p + 20 > end:
                        st = TRUNCATED
                        break
                    ihl = (buf[p] & 0x0F) * 4
                    tot = _be16(buf, p + 2)
                    if ihl < 20 or tot < ihl:
                        st = BAD_IP
                        break
                    if p + ihl > end:
                        st = TRUNCATED
                        break
                    ver = 4
                    iplen = tot
                    ident = _be16(buf, p + 4)
                    fo = _be16(buf, p + 6)
                    fro = (fo & 0x1FFF) * 8
                    mf = 1 if (fo & 0x2000) else 0
                    hops = buf[p + 8]
                    pr = buf[p + 9]
                    s_lo = IPV4_MAPPED_LO_PREFIX | np.uint64(_be32(buf, p + 12))
                    d_lo = IPV4_MAPPED_LO_PREFIX | np.uint64(_be32(buf, p + 16))
                    l4 = p + ihl
                    l4_end = p + tot  # may lie past the captured end
                    if fro != 0 or mf:
                        st = FRAGMENT
                        poff = l4
                        pcap = max(0, min(end, l4_end) - l4)
                        plen = tot - ihl
                        break
                elif v == 6:
                    if p + 40 > end:
                        st = TRUNCATED
                        break
                    ver = 6
                    pl6 = _be16(buf, p + 4)
                    iplen = pl6 + 40
                    hops = buf[p + 7]
                    s_hi = _be64(buf, p + 8)
                    s_lo = _be64(buf, p + 16)
                    d_hi = _be64(buf, p + 24)
                    d_lo = _be64(buf, p + 32)
                    nh = np.int64(buf[p + 6])
                    l4 = p + 40
                    l4_end = p + 40 + pl6
                    frag = False
                    # Extension headers: hop-by-hop, routing, fragment, destination options,
                    # mobility.
                    while nh == 0 or nh == 43 or nh == 44 or nh == 60 or nh == 135 or nh == 51:
                        if l4 + 8 > end:
                            break
                        if nh == 44:
                            fo = _be16(buf, l4 + 2)
                            fro = fo & 0xFFF8
                            mf = fo & 1
                            ident = _be32(buf, l4 + 4)
                            frag = fro != 0 or mf != 0
                            nxt = np.int64(buf[l4])
                            l4 += 8
                        elif nh == 51:  # AH: length in 4-octet units minus 2
                            nxt = np.int64(buf[l4])
                            l4 += (np.int64(buf[l4 + 1]) + 2) * 4
                        else:
                            nxt = np.int64(buf[l4])
                            l4 += (np.int64(buf[l4 + 1]) + 1) * 8
                        nh = nxt
                        if frag:
                            break
                    pr = nh
                    if frag:
                        st = FRAGMENT
                        poff = l4
                        pcap = max(0, min(end, l4_end) - l4)
                        # Extension headers can claim more than the payload length states.
                        plen = max(0, l4_end - l4)
                        break
                    if l4 > end:
                        st = TRUNCATED
                        break
                else:
                    st = BAD_IP
                    break

                # ---- transport layer
                cap_end = min(end, l4_end)
                if pr == 6:
                    if l4 + 20 > cap_end:
                        st = TRUNCATED
                        break
                    sp = _be16(buf, l4)
                    dp = _be16(buf, l4 + 2)
                    sq = _be32(buf, l4 + 4)
                    ak = _be32(buf, l4 + 8)
                    hl = (buf[l4 + 12] >> 4) * 4
                    tcpf = buf[l4 + 13]
                    wn = _be16(buf, l4 + 14)
                    # A data offset below the fixed header, or past what was captured (options
                    # cut by the snaplen), leaves no payload to point at: the payload offset
                    # would lie outside the record.
                    if hl < 20 or l4 + hl > cap_end:
                        st = TRUNCATED
                        break
                    poff = l4 + hl
                    plen = max(0, l4_end - (l4 + hl))
                    pcap = max(0, cap_end - (l4 + hl))
                elif pr == 17:
                    if l4 + 8 > cap_end:
                        st = TRUNCATED
                        break
                    sp = _be16(buf, l4)
                    dp = _be16(buf, l4 + 2)
                    ulen = _be16(buf, l4 + 4)
                    poff = l4 + 8
                    plen_ip = l4_end - (l4 + 8)
                    plen = max(0, min(ulen - 8, plen_ip) if ulen >= 8 else plen_ip)
                    pcap = max(0, min(cap_end - (l4 + 8), plen))
                elif pr == 1 or pr == 58:
                    if l4 + 4 > cap_end:
                        st = TRUNCATED
                        break
                    sp = buf[l4]
                    dp = buf[l4 + 1]
                    poff = l4 + 4
                    plen = max(0, l4_end - (l4 + 4))
                    pcap = max(0, cap_end - (l4 + 4))
                else:
                    poff = l4
                    plen = max(0, l4_end - l4)
                    pcap = max(0, cap_end - l4)

                # ---- tunnels: the payload is another packet
                if d + 1 >= MAX_DEPTH:
                    break
                po = poff
                pe = po + pcap
                if pr == 4 or pr == 41:
                    inner = po
                    tun = TUN_IP
                elif pr == 47 and pe - po >= 4:
                    gflags = _be16(buf, po)
                    gver = gflags & 7
                    gproto = _be16(buf, po + 2)
                    glen = 4
                    if gflags & 0x8000:
                        glen += 4
                    if gflags & 0x2000:
                        glen += 4
                    if gflags & 0x1000:
                        glen += 4
                    if gver == 1 and gflags & 0x0080:
                        glen += 4
                    q = po + glen
                    if q < pe:
                        if gproto == 0x0800 or gproto == 0x86DD:
                            inner = q
                        elif gproto == 0x6558:
                            inner = q
                            inner_layer = _L_ETHER
                        elif gproto == 0x880B and gver == 1:
                            inner = q
                            inner_layer = _L_PPP
                        elif gproto == 0x88BE and q + 8 < pe:  # ERSPAN type II
                            inner = q + 8
                            inner_layer = _L_ETHER
                        elif gproto == 0x22EB and q + 12 < pe:  # ERSPAN type III
                            inner = q + 12
                            inner_layer = _L_ETHER
                        if inner >= 0:
                            tun = TUN_GRE
                elif pr == 17 and pe - po >= 8:
                    if dp == VXLAN_PORT and (buf[po] & 0x08):
                        inner = po + 8
                        inner_layer = _L_ETHER
                        tun = TUN_VXLAN
                    elif (dp == TEREDO_PORT or sp == TEREDO_PORT) and pe - po >= 40:
                        q = po
                        # Optional authentication and origin-indication headers.
                        if buf[q] == 0 and buf[q + 1] == 1 and q + 4 <= pe:
                            q += 4 + buf[q + 2] + buf[q + 3] + 9
                        if q + 8 <= pe and buf[q] == 0 and buf[q + 1] == 0:
                            q += 8
                        if q + 40 <= pe and (buf[q] >> 4) == 6:
                            plen6 = _be16(buf, q + 4)
                            if q + 40 + plen6 == pe:
                                inner = q
                                tun = TUN_TEREDO
                    elif (dp == GTPU_PORT or sp == GTPU_PORT) and pe - po >= 8:
                        gf = buf[po]
                        if (gf >> 5) == 1 and buf[po + 1] == 0xFF:
                            q = po + 8
                            if gf & 0x07:
                                q += 4
                                # Extension headers chain.
                                while q <= pe and q > 0 and buf[q - 1] != 0 and q + 1 <= pe:
                                    if buf[q] == 0:  # a zero-length extension never advances
                                        q = pe
                                        break
                                    q += buf[q] * 4
                            if q < pe and ((buf[q] >> 4) == 4 or (buf[q] >> 4) == 6):
                                inner = q
                                tun = TUN_GTP
                if inner < 0 or inner >= pe:
                    tun = TUN_NONE
                    inner = -1
                    plain = True
                break

            rec[r] = i
            parent[r] = par
            depth[r] = d
            status[r] = st
            tunnel[r] = tun
            ip_ver[r] = ver
            proto[r] = pr
            src_hi[r] = s_hi
            src_lo[r] = s_lo
            dst_hi[r] = d_hi
            dst_lo[r] = d_lo
            ip_off[r] = ipo
            ip_len[r] = iplen
            ip_id[r] = ident
            frag_off[r] = fro
            more_frags[r] = mf
            ttl[r] = hops
            sport[r] = sp
            dport[r] = dp
            flags[r] = tcpf
            seq[r] = sq
            ack[r] = ak
            win[r] = wn
            pay_off[r] = poff
            pay_cap[r] = pcap
            pay_len[r] = plen
            if inner >= 0:
                # Descend: the inner packet becomes the next row.
                par = np.int64(r)
                d += 1
                off = inner
                end = pe
                layer = inner_layer
                continue
            if (
                plain
                and d == 0
                and shard_n > 1
                and i != n - 1
                and endpoint_shard(pr, sp, dp, s_hi, s_lo, d_hi, d_lo, shard_n) != shard_k
                and not tracked_everywhere(pr, sp, dp)
            ):
                row = np.int64(r)  # another worker's packet: its row is overwritten by the next
            break
    return row


def decode(batch: RecordBatch, shard: tuple[int, int] = (0, 1)) -> PacketColumns:
    """Decode every record of a batch (tunnels add rows).

    With ``shard=(k, n)``, the plain packets of connections of other workers than k are skipped
    (``flows.shards``): most of a worker's decoding and every later pass over its rows were spent
    on packets it only marked as another's. Skipped are only packets that would be one complete,
    untunnelled row on a connection no tunnel can use: fragments (which every worker reassembles,
    as the reassembler's bounds depend on all of them), tunnels, UDP on tunnel ports and damaged
    packets keep their rows, which ``keep_shard`` then marks.
    So does the batch's last record, whose time is the tracker's clock at the batch end. ``rec``
    still numbers records in the batch, so a row's record is found as before.
    """
    n = len(batch)
    cap = n * 2 + 16
    while True:
        cols = {name: np.empty(cap, dtype) for name, dtype in COLUMNS.items()}
        rows = decode_batch(
            batch.buf, batch.data_off, batch.caplen, batch.linktype,
            *(cols[name] for name in COLUMNS), *shard,
        )  # fmt: skip
        if rows < cap:
            return PacketColumns({k: v[:rows] for k, v in cols.items()})
        cap *= 2


# Helpers and constants of shardhash compile into these kernels: a change there must
# recompile them too (Numba's cache sees only this file).
depends_on(__name__, "mamori.sensors.pcap.shardhash")
