"""The L2–L4 decoder: every link type and layer it claims, tunnels, damage, and dpkt's opinion.

Frames are built by ``support.pcap_writer`` (independent of the decoder), so each expected field is
known by construction. Random frames check the decoder's safety contract: whatever the bytes, it
terminates and every offset it reports lies inside the record it came from, because later stages
slice the shared buffer with those offsets without re-checking them.
"""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.sensors.pcap import decode as D
from mamori.sensors.pcap.reader import PcapReader, RecordBatch
from support.pcap_writer import (
    TCP_ACK,
    TCP_PSH,
    TCP_SYN,
    Rec,
    classic_pcap,
    ether,
    gre,
    icmp,
    ip4,
    ip6,
    ipv4,
    ipv6,
    ipv6_frag,
    ipv6_opts,
    mapped_hi,
    mapped_lo,
    mpls,
    null_loop,
    ppp,
    pppoe_session,
    sll,
    sll2,
    tcp,
    teredo_origin,
    udp,
    vlan_tag,
    vxlan,
)

A4, B4 = ip4("192.0.2.1"), ip4("198.51.100.7")
A6, B6 = ip6("2001:db8::1"), ip6("2001:db8:ffff::2")
GUARD = b"\xee" * 7  # between records, so a read past a record's end sees foreign bytes


def batch_of(frames: list[bytes], linktypes: list[int] | int) -> RecordBatch:
    """A RecordBatch over ``frames`` (one record each) without going through a file."""
    if isinstance(linktypes, int):
        linktypes = [linktypes] * len(frames)
    buf = bytearray(GUARD)
    offs = []
    for f in frames:
        offs.append(len(buf))
        buf += f + GUARD
    n = len(frames)
    caplen = np.array([len(f) for f in frames], np.int32)
    return RecordBatch(
        buf=np.frombuffer(bytes(buf), np.uint8),
        data_off=np.array(offs, np.int64),
        ts_ns=np.zeros(n, np.int64),
        caplen=caplen,
        wirelen=caplen.copy(),
        linktype=np.array(linktypes, np.int32),
        file_off=np.zeros(n, np.int64),
        first_record=0,
    )


def rows_of(frame: bytes, linktype: int) -> list[dict[str, int]]:
    """Decoded rows of one frame, offsets made relative to the frame's first byte."""
    batch = batch_of([frame], linktype)
    cols = D.decode(batch)
    base = int(batch.data_off[0])
    out = []
    for r in range(len(cols)):
        row = {name: int(cols[name][r]) for name in D.COLUMNS}
        for k in ("ip_off", "pay_off"):
            if row[k] >= 0:
                row[k] -= base
        out.append(row)
    check_invariants(batch, cols)
    return out


def check_invariants(batch: RecordBatch, cols: D.PacketColumns) -> None:
    """The decoder's safety contract over a whole batch (see module docstring)."""
    rec, parent, depth = cols["rec"], cols["parent"], cols["depth"]
    assert np.all(np.diff(rec) >= 0), "rows must follow record order"
    assert set(np.unique(rec).tolist()) == set(range(len(batch))), "one row at least per record"
    for r in range(len(cols)):
        i = int(rec[r])
        lo = int(batch.data_off[i])
        hi = lo + int(batch.caplen[i])
        p = int(parent[r])
        if p < 0:
            assert depth[r] == 0
            assert r == 0 or rec[r - 1] != i, "the outermost row comes first"
            win_lo, win_hi = lo, hi
        else:
            assert p < r and rec[p] == i and depth[r] == depth[p] + 1
            assert cols["tunnel"][p] != D.TUN_NONE
            # An inner packet lies inside its carrier's captured payload.
            win_lo = int(cols["pay_off"][p])
            win_hi = win_lo + int(cols["pay_cap"][p])
        assert depth[r] < D.MAX_DEPTH
        assert cols["status"][r] in (
            D.OK,
            D.UNKNOWN_LINK,
            D.NOT_IP,
            D.TRUNCATED,
            D.BAD_IP,
            D.FRAGMENT,
        )
        ip_off = int(cols["ip_off"][r])
        assert ip_off == -1 or win_lo <= ip_off < win_hi, (r, ip_off, win_lo, win_hi)
        pay_off, pay_cap, pay_len = (int(cols[k][r]) for k in ("pay_off", "pay_cap", "pay_len"))
        assert 0 <= pay_cap <= pay_len, (r, pay_cap, pay_len)
        assert win_lo <= pay_off and pay_off + pay_cap <= win_hi, (r, pay_off, pay_cap, win_hi)
        assert pay_off + pay_cap <= hi
        if cols["tunnel"][r] != D.TUN_NONE:
            assert r + 1 < len(cols) and parent[r + 1] == r, "a tunnel row is followed by its child"


def only(rows: list[dict[str, int]]) -> dict[str, int]:
    assert len(rows) == 1, rows
    return rows[0]


def assert_addrs(row: dict[str, int], src: bytes, dst: bytes) -> None:
    assert (row["src_hi"], row["src_lo"]) == (mapped_hi(src), mapped_lo(src))
    assert (row["dst_hi"], row["dst_lo"]) == (mapped_hi(dst), mapped_lo(dst))


# ------------------------------------------------------------------------------------ link types

PAYLOAD = b"GET / HTTP/1.1\r\n\r\n"
TCP_SEG = tcp(49152, 80, PAYLOAD, seq=0xFEDCBA98, ack=0x01020304, flags=TCP_ACK | TCP_PSH, win=512)
IP4_TCP = ipv4(A4, B4, 6, TCP_SEG, ttl=57, ident=0xBEEF)
IP6_TCP = ipv6(A6, B6, 6, TCP_SEG, hop_limit=33)


def assert_tcp(row: dict[str, int], ip_at: int, v6: bool = False) -> None:
    """Every field of the reference TCP segment, at IP offset ``ip_at`` of the frame."""
    assert row["status"] == D.OK
    assert row["ip_off"] == ip_at
    assert row["ip_ver"] == (6 if v6 else 4)
    assert row["proto"] == 6
    assert_addrs(row, A6 if v6 else A4, B6 if v6 else B4)
    hdr = 40 if v6 else 20
    assert row["ip_len"] == hdr + len(TCP_SEG)
    assert row["ttl"] == (33 if v6 else 57)
    assert row["ip_id"] == (0 if v6 else 0xBEEF)
    assert (row["sport"], row["dport"]) == (49152, 80)
    assert (row["seq"], row["ack"], row["win"]) == (0xFEDCBA98, 0x01020304, 512)
    assert row["flags"] == TCP_ACK | TCP_PSH
    assert row["pay_off"] == ip_at + hdr + 20
    assert row["pay_len"] == row["pay_cap"] == len(PAYLOAD)


@pytest.mark.parametrize(
    ("linktype", "frame", "ip_at", "v6", "vlan"),
    [
        pytest.param(1, ether(0x0800, IP4_TCP), 14, False, -1, id="ethernet-v4"),
        pytest.param(1, ether(0x86DD, IP6_TCP), 14, True, -1, id="ethernet-v6"),
        pytest.param(1, ether(0x8100, vlan_tag(100, 0x0800) + IP4_TCP), 18, False, 100, id="dot1q"),
        pytest.param(
            1,
            ether(0x88A8, vlan_tag(10, 0x8100) + vlan_tag(20, 0x86DD) + IP6_TCP),
            22,
            True,
            10,
            id="qinq",
        ),
        pytest.param(1, ether(0x8847, mpls([16, 17, 18], IP4_TCP)), 26, False, -1, id="mpls-v4"),
        pytest.param(1, ether(0x8847, mpls([1000], IP6_TCP)), 18, True, -1, id="mpls-v6"),
        pytest.param(
            1,
            ether(0x8100, vlan_tag(7, 0x8847) + mpls([5, 6], IP4_TCP)),
            26,
            False,
            7,
            id="vlan-mpls",
        ),
        pytest.param(1, ether(0x8864, pppoe_session(0x0021, IP4_TCP)), 22, False, -1, id="pppoe"),
        pytest.param(1, ether(0x8864, pppoe_session(0x0057, IP6_TCP)), 22, True, -1, id="pppoe6"),
        pytest.param(101, IP4_TCP, 0, False, -1, id="raw101-v4"),
        pytest.param(101, IP6_TCP, 0, True, -1, id="raw101-v6"),
        pytest.param(228, IP4_TCP, 0, False, -1, id="ipv4-228"),
        pytest.param(229, IP6_TCP, 0, True, -1, id="ipv6-229"),
        pytest.param(113, sll(0x0800, IP4_TCP), 16, False, -1, id="sll"),
        pytest.param(113, sll(0x8100, vlan_tag(3, 0x86DD) + IP6_TCP), 20, True, 3, id="sll-vlan"),
        pytest.param(276, sll2(0x0800, IP4_TCP), 20, False, -1, id="sll2"),
        pytest.param(276, sll2(0x86DD, IP6_TCP), 20, True, -1, id="sll2-v6"),
        pytest.param(0, null_loop(2, IP4_TCP, big_endian=False), 4, False, -1, id="null-le"),
        pytest.param(0, null_loop(2, IP4_TCP, big_endian=True), 4, False, -1, id="null-be"),
        pytest.param(0, null_loop(30, IP6_TCP, big_endian=False), 4, True, -1, id="null-le-v6"),
        pytest.param(0, null_loop(24, IP6_TCP, big_endian=True), 4, True, -1, id="null-be-v6"),
        pytest.param(108, null_loop(2, IP4_TCP, big_endian=True), 4, False, -1, id="loop"),
        pytest.param(108, null_loop(28, IP6_TCP, big_endian=True), 4, True, -1, id="loop-v6"),
        pytest.param(9, ppp(0x0021, IP4_TCP), 4, False, -1, id="ppp"),
        pytest.param(9, ppp(0x0057, IP6_TCP, addr_ctrl=False), 2, True, -1, id="ppp-noac"),
    ],
)
def test_link_layers_reach_tcp(
    linktype: int, frame: bytes, ip_at: int, v6: bool, vlan: int
) -> None:
    row = only(rows_of(frame, linktype))
    assert_tcp(row, ip_at, v6)
    assert row["vlan"] == vlan
    assert row["depth"] == 0 and row["parent"] == -1 and row["tunnel"] == D.TUN_NONE


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        pytest.param(1, ether(0x0806, b"\0\x01\x08\0\x06\x04\0\x01" + b"\0" * 20), id="arp"),
        pytest.param(1, ether(0x88CC, b"\x02\x07\x04" + b"\0" * 20), id="lldp"),
        pytest.param(1, ether(0x8864, pppoe_session(0xC021, b"\x01\x01\0\x04")), id="pppoe-lcp"),
        pytest.param(0, null_loop(7, IP4_TCP, big_endian=False), id="null-unknown-family"),
        pytest.param(9, ppp(0xC021, b"\x01\x01\0\x04"), id="ppp-lcp"),
        pytest.param(113, sll(0x0806, b"\0" * 28), id="sll-arp"),
    ],
)
def test_non_ip_frames(linktype: int, frame: bytes) -> None:
    row = only(rows_of(frame, linktype))
    assert row["status"] == D.NOT_IP
    assert row["ip_off"] == -1 and row["ip_ver"] == 0


@pytest.mark.parametrize("linktype", [147, 105, 127, 65000])
def test_unknown_link_type(linktype: int) -> None:
    row = only(rows_of(ether(0x0800, IP4_TCP), linktype))
    assert row["status"] == D.UNKNOWN_LINK
    assert row["ip_off"] == -1 and row["pay_cap"] == 0


# ---------------------------------------------------------------------------------------- layers


def test_ipv4_options_move_the_transport_header() -> None:
    options = b"\x07\x0b\x04" + b"\0" * 8 + b"\x01"  # record route (11 bytes) + NOP → IHL 8
    frame = ether(0x0800, ipv4(A4, B4, 6, TCP_SEG, options=options, ttl=57, ident=0xBEEF))
    row = only(rows_of(frame, 1))
    assert row["status"] == D.OK
    assert row["ip_len"] == 32 + len(TCP_SEG)
    assert row["pay_off"] == 14 + 32 + 20
    assert (row["sport"], row["dport"], row["seq"]) == (49152, 80, 0xFEDCBA98)


def test_tcp_options_and_flags() -> None:
    seg = tcp(1, 2, b"xyz", flags=TCP_SYN, options=b"\x02\x04\x05\xb4\x01\x03\x03\x07")
    row = only(rows_of(ipv4(A4, B4, 6, seg), 101))
    assert row["flags"] == TCP_SYN
    assert row["pay_off"] == 20 + 28 and row["pay_len"] == row["pay_cap"] == 3


def test_ipv6_extension_headers_then_tcp() -> None:
    # hop-by-hop → destination options → atomic fragment (offset 0, M=0) → TCP
    ext = ipv6_opts(60, 6) + ipv6_opts(44, 14) + ipv6_frag(6, 0, False, 0xCAFE)
    frame = ether(0x86DD, ipv6(A6, B6, 0, ext + TCP_SEG))
    row = only(rows_of(frame, 1))
    assert row["status"] == D.OK and row["proto"] == 6
    assert row["ip_len"] == 40 + len(ext) + len(TCP_SEG)
    assert row["pay_off"] == 14 + 40 + len(ext) + 20
    assert (row["sport"], row["dport"]) == (49152, 80)
    assert row["ip_id"] == 0xCAFE and row["frag_off"] == 0 and row["more_frags"] == 0


@pytest.mark.parametrize(("offset", "more"), [(0, True), (1448, True), (2896, False)])
def test_ipv6_fragments(offset: int, more: bool) -> None:
    body = b"F" * 64
    ext = ipv6_opts(44) + ipv6_frag(17, offset, more, 0x11223344)
    row = only(rows_of(ipv6(A6, B6, 0, ext + body), 229))
    assert row["status"] == D.FRAGMENT
    assert row["proto"] == 17
    assert (row["frag_off"], row["more_frags"], row["ip_id"]) == (offset, int(more), 0x11223344)
    assert row["pay_off"] == 40 + len(ext) and row["pay_len"] == row["pay_cap"] == 64


@pytest.mark.parametrize(("offset", "more"), [(0, True), (1480, True), (2960, False)])
def test_ipv4_fragments(offset: int, more: bool) -> None:
    body = b"F" * 100
    pkt = ipv4(A4, B4, 17, body, frag_off=offset, more_frags=more, ident=77)
    row = only(rows_of(pkt, 228))
    assert row["status"] == D.FRAGMENT
    assert (row["frag_off"], row["more_frags"], row["ip_id"]) == (offset, int(more), 77)
    assert row["pay_off"] == 20 and row["pay_len"] == row["pay_cap"] == 100
    assert row["sport"] == 0 and row["dport"] == 0  # a fragment's ports are not read


def test_udp_length_and_ethernet_padding() -> None:
    frame = ether(0x0800, ipv4(A4, B4, 17, udp(5353, 53, b"abcd")))
    frame += b"\0" * (60 - len(frame))  # minimum Ethernet frame: the padding is not payload
    row = only(rows_of(frame, 1))
    assert row["proto"] == 17 and (row["sport"], row["dport"]) == (5353, 53)
    assert row["ip_len"] == 32
    assert row["pay_off"] == 14 + 28 and row["pay_len"] == row["pay_cap"] == 4


def test_udp_length_field_shorter_than_ip_payload() -> None:
    row = only(rows_of(ipv4(A4, B4, 17, udp(1, 2, b"abcdefgh", length=10)), 101))
    assert row["pay_len"] == row["pay_cap"] == 2


@pytest.mark.parametrize(
    ("frame", "itype", "code", "v6"),
    [
        (ipv4(A4, B4, 1, icmp(8, 0, b"\0\x01\0\x02ping")), 8, 0, False),
        (ipv4(A4, B4, 1, icmp(3, 3, b"\0" * 4 + IP4_TCP[:28])), 3, 3, False),
        (ipv6(A6, B6, 58, icmp(128, 0, b"\0\x01\0\x02")), 128, 0, True),
        (ipv6(A6, B6, 58, icmp(1, 4, b"\0" * 4)), 1, 4, True),
    ],
)
def test_icmp_type_and_code(frame: bytes, itype: int, code: int, v6: bool) -> None:
    row = only(rows_of(frame, 101))
    assert row["proto"] == (58 if v6 else 1)
    assert (row["sport"], row["dport"]) == (itype, code)
    hdr = 40 if v6 else 20
    assert row["pay_off"] == hdr + 4 and row["pay_len"] == len(frame) - hdr - 4


# --------------------------------------------------------------------------------------- tunnels

INNER4 = ipv4(ip4("10.0.0.1"), ip4("10.0.0.2"), 17, udp(1000, 2000, b"inner"))


def assert_inner_udp(rows: list[dict[str, int]], tunnel: int, inner_ip_at: int) -> None:
    assert len(rows) == 2
    outer, inner = rows
    assert outer["tunnel"] == tunnel and outer["parent"] == -1 and outer["depth"] == 0
    assert inner["parent"] == 0 and inner["depth"] == 1 and inner["rec"] == outer["rec"]
    assert inner["status"] == D.OK and inner["ip_off"] == inner_ip_at
    assert_addrs(inner, ip4("10.0.0.1"), ip4("10.0.0.2"))
    assert (inner["proto"], inner["sport"], inner["dport"]) == (17, 1000, 2000)
    assert inner["pay_len"] == inner["pay_cap"] == 5


@pytest.mark.parametrize(
    ("flags", "hdr"),
    [({}, 4), ({"key": 0x1234}, 8), ({"key": 1, "seq": 2}, 12), ({"checksum": True, "seq": 9}, 12)],
)
def test_gre_carries_ipv4(flags: dict, hdr: int) -> None:
    frame = ether(0x0800, ipv4(A4, B4, 47, gre(0x0800, INNER4, **flags)))
    rows = rows_of(frame, 1)
    assert rows[0]["proto"] == 47 and rows[0]["pay_off"] == 34
    assert_inner_udp(rows, D.TUN_GRE, 34 + hdr)


def test_gre_transparent_ethernet_bridging() -> None:
    inner = ether(0x8100, vlan_tag(42, 0x0800) + INNER4)
    rows = rows_of(ipv4(A4, B4, 47, gre(0x6558, inner, key=5)), 101)
    assert_inner_udp(rows, D.TUN_GRE, 20 + 8 + 18)
    assert rows[0]["vlan"] == -1 and rows[1]["vlan"] == 42


def test_vxlan() -> None:
    inner = ether(0x0800, INNER4)
    frame = ether(0x0800, ipv4(A4, B4, 17, udp(55555, 4789, vxlan(77, inner))))
    rows = rows_of(frame, 1)
    assert (rows[0]["sport"], rows[0]["dport"]) == (55555, 4789)
    assert_inner_udp(rows, D.TUN_VXLAN, 14 + 20 + 8 + 8 + 14)


def test_vxlan_port_without_the_i_flag_is_plain_udp() -> None:
    body = b"\0" * 8 + ether(0x0800, INNER4)
    rows = rows_of(ipv4(A4, B4, 17, udp(1, 4789, body)), 101)
    assert len(rows) == 1 and rows[0]["tunnel"] == D.TUN_NONE


def test_teredo_with_origin_indication() -> None:
    inner6 = ipv6(A6, B6, 17, udp(1000, 2000, b"inner"))
    body = teredo_origin(40000, ip4("203.0.113.9")) + inner6
    rows = rows_of(ipv4(A4, B4, 17, udp(3544, 61000, body)), 101)
    assert len(rows) == 2 and rows[0]["tunnel"] == D.TUN_TEREDO
    inner = rows[1]
    assert inner["parent"] == 0 and inner["ip_ver"] == 6 and inner["ip_off"] == 20 + 8 + 8
    assert_addrs(inner, A6, B6)
    assert (inner["sport"], inner["dport"]) == (1000, 2000)


@pytest.mark.parametrize(("proto", "inner_pkt", "v6"), [(4, INNER4, False), (41, None, True)])
def test_ip_in_ip(proto: int, inner_pkt: bytes | None, v6: bool) -> None:
    inner_pkt = inner_pkt or ipv6(A6, B6, 6, TCP_SEG, hop_limit=33)
    rows = rows_of(ether(0x0800, ipv4(A4, B4, proto, inner_pkt)), 1)
    assert len(rows) == 2 and rows[0]["tunnel"] == D.TUN_IP and rows[1]["parent"] == 0
    if v6:
        assert_tcp(rows[1], 34, v6=True)
    else:
        assert_inner_udp(rows, D.TUN_IP, 34)


def test_nested_tunnels_chain_parents() -> None:
    # Ethernet / IPv4 / UDP / VXLAN / Ethernet / IPv4 / GRE / IPv6 / TCP
    l3 = ipv4(ip4("10.0.0.1"), ip4("10.0.0.2"), 47, gre(0x86DD, IP6_TCP, key=3))
    frame = ether(0x0800, ipv4(A4, B4, 17, udp(9, 4789, vxlan(1, ether(0x0800, l3)))))
    rows = rows_of(frame, 1)
    assert [r["depth"] for r in rows] == [0, 1, 2]
    assert [r["parent"] for r in rows] == [-1, 0, 1]
    assert [r["tunnel"] for r in rows] == [D.TUN_VXLAN, D.TUN_GRE, D.TUN_NONE]
    assert_tcp(rows[2], 14 + 20 + 8 + 8 + 14 + 20 + 8, v6=True)


def test_gtp_user_plane() -> None:
    gtp = bytes([0x30, 0xFF]) + len(INNER4).to_bytes(2, "big") + b"\0\0\0\x01" + INNER4
    rows = rows_of(ipv4(A4, B4, 17, udp(2152, 2152, gtp)), 101)
    assert_inner_udp(rows, D.TUN_GTP, 20 + 8 + 8)


def test_gtp_zero_length_extension_header_terminates() -> None:
    """Regression: an extension header of length 0 never advanced the walk (infinite loop)."""
    gtp = bytes([0x34, 0xFF, 0, 40]) + b"\0\0\0\x01" + b"\0\0\0\x85" + b"\0" * 32
    rows = rows_of(ipv4(A4, B4, 17, udp(2152, 2152, gtp)), 101)
    assert len(rows) == 1 and rows[0]["tunnel"] == D.TUN_NONE


# --------------------------------------------------------------------------------------- damage


def test_snaplen_cut_in_payload_keeps_headers() -> None:
    frame = ether(0x0800, IP4_TCP)
    row = only(rows_of(frame[:-5], 1))
    assert row["status"] == D.OK and (row["sport"], row["dport"]) == (49152, 80)
    assert row["ip_len"] == len(IP4_TCP)  # as the header states, not as captured
    assert row["pay_len"] == len(PAYLOAD) and row["pay_cap"] == len(PAYLOAD) - 5


@pytest.mark.parametrize("cut", [10, 14, 20, 33, 34, 40, 53])
def test_snaplen_cut_in_headers_is_truncated(cut: int) -> None:
    row = only(rows_of(ether(0x0800, IP4_TCP)[:cut], 1))
    assert row["status"] == D.TRUNCATED and row["pay_cap"] == 0


def test_tcp_options_cut_by_snaplen_stay_inside_the_record() -> None:
    """Regression: a data offset beyond the captured bytes put pay_off past the record's end."""
    seg = tcp(1, 2, b"payload", options=b"\x01" * 40)  # 60-byte header
    row = only(rows_of(ipv4(A4, B4, 6, seg)[: 20 + 24], 101))
    assert row["status"] == D.TRUNCATED
    assert row["pay_off"] <= 44 and row["pay_cap"] == 0


def test_ipv6_fragment_with_short_payload_length() -> None:
    """Regression: extension headers beyond the stated payload length gave a negative pay_len."""
    ext = ipv6_opts(44, 30) + ipv6_frag(17, 8, True, 1)
    row = only(rows_of(ipv6(A6, B6, 0, ext + b"x" * 8, payload_length=8), 229))
    assert row["status"] == D.FRAGMENT and row["pay_len"] == 0 and row["pay_cap"] == 0


@pytest.mark.parametrize(
    "pkt",
    [
        b"\x45" + b"\0" * 19,  # total length 0 < header length
        b"\x43" + b"\0" * 30,  # IHL 3
        b"\x75" + b"\0" * 39,  # version 7
    ],
)
def test_impossible_ip_headers(pkt: bytes) -> None:
    assert only(rows_of(pkt, 101))["status"] == D.BAD_IP


def test_many_tunnel_rows_grow_the_output() -> None:
    """Every record a 3-row tunnel: more rows than the first guess (2 per record) must fit."""
    l3 = ipv4(ip4("10.0.0.1"), ip4("10.0.0.2"), 4, INNER4)
    frame = ipv4(A4, B4, 47, gre(0x0800, l3))
    batch = batch_of([frame] * 50, 101)
    cols = D.decode(batch)
    assert len(cols) == 150
    assert cols["depth"].tolist() == [0, 1, 2] * 50
    check_invariants(batch, cols)


# --------------------------------------------------------------------------- random frames


LINKTYPES = [0, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276, 147]


def _prefix(draw: st.DrawFn, linktype: int) -> bytes:
    """A plausible link header so that random data reaches the deeper layers often."""
    et = draw(st.sampled_from([0x0800, 0x86DD, 0x8100, 0x88A8, 0x8847, 0x8864, 0x0806]))
    if linktype == 1:
        return b"\0" * 12 + et.to_bytes(2, "big")
    if linktype == 113:
        return b"\0" * 14 + et.to_bytes(2, "big")
    if linktype == 276:
        return et.to_bytes(2, "big") + b"\0" * 18
    if linktype in (0, 108):
        return null_loop(draw(st.sampled_from([2, 24, 28, 30])), b"", big_endian=linktype == 108)
    if linktype in (9, 50):
        return ppp(draw(st.sampled_from([0x0021, 0x0057])), b"")
    return b""


def _ip_packet(draw: st.DrawFn, depth: int) -> bytes:
    """A random IP packet whose transport (or tunnel, carrying another one) is well formed."""
    proto = draw(st.sampled_from([6, 6, 17, 17, 47, 4, 41, 1, 58, 0, 44, 60, 51]))
    noise = draw(st.binary(max_size=60))
    inner = _ip_packet(draw, depth + 1) if depth < 4 and draw(st.booleans()) else noise
    if proto == 6:
        opts = draw(st.binary(max_size=40))
        body = tcp(
            draw(st.integers(0, 0xFFFF)), 80, noise, options=opts, flags=draw(st.integers(0, 255))
        )
    elif proto == 17:
        port = draw(st.sampled_from([4789, 3544, 2152, 53]))
        if port == 4789:
            inner = vxlan(1, ether(0x0800, inner))
        elif port == 3544:
            inner = teredo_origin(1, A4) + inner
        elif port == 2152:
            inner = bytes([0x30 | draw(st.integers(0, 7)), 0xFF, 0, 0, 0, 0, 0, 1]) + inner
        body = udp(port, port, inner, length=draw(st.none() | st.integers(0, 0xFFFF)))
    elif proto == 47:
        etype = draw(st.sampled_from([0x0800, 0x86DD, 0x6558, 0x88BE, 0x22EB, 0x880B]))
        if etype in (0x6558, 0x88BE, 0x22EB):
            inner = b"\0" * draw(st.sampled_from([0, 8, 12])) + ether(0x0800, inner)
        body = gre(
            etype, inner, key=draw(st.none() | st.integers(0, 5)), seq=draw(st.none() | st.just(1))
        )
    elif proto in (4, 41):
        body = inner
    elif proto in (0, 44, 60, 51):
        body = bytes([draw(st.sampled_from([6, 17, 44, 60])), draw(st.integers(0, 3))]) + noise
    else:
        body = icmp(draw(st.integers(0, 255)), 0, noise)
    if draw(st.booleans()):
        return ipv4(
            A4,
            B4,
            proto,
            body,
            options=draw(st.binary(max_size=40)),
            frag_off=draw(st.sampled_from([0, 0, 0, 8])),
        )
    return ipv6(A6, B6, proto, body)


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, int]:
    """A random frame: either pure noise, or real headers (tunnels included) then damage and cuts."""
    linktype = draw(st.sampled_from(LINKTYPES))
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=200)), linktype
    frame = bytearray(_prefix(draw, linktype) + _ip_packet(draw, 0))
    for _ in range(draw(st.integers(0, 3))):  # corrupt a few bytes: lengths, flags, versions
        frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(frame)))
    return bytes(frame[:cut] if draw(st.booleans()) else frame), linktype


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=8))
def test_random_frames_never_escape_their_record(items: list[tuple[bytes, int]]) -> None:
    batch = batch_of([f for f, _ in items], [lt for _, lt in items])
    check_invariants(batch, D.decode(batch))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(LINKTYPES), st.lists(st.binary(max_size=100), min_size=1, max_size=8))
def test_random_bytes_under_every_link_type(linktype: int, data: list[bytes]) -> None:
    batch = batch_of(data, linktype)
    check_invariants(batch, D.decode(batch))


# ------------------------------------------------------------------------- dpkt cross-check


def shared_captures(data_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in data_dir.rglob("*")
        if p.is_file() and p.suffix in (".pcap", ".pcapng", ".cap", ".dump", ".trace")
    )


def _dpkt_ip(buf: bytes, linktype: int) -> dpkt.ip.IP | dpkt.ip6.IP6 | None:
    """The outermost IP packet as dpkt sees it, or None when dpkt does not see one."""
    if linktype == 1:
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
    elif linktype == 113:
        ip = dpkt.sll.SLL(buf).data
    elif linktype in (101, 228, 229):
        ip = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
    else:
        return None
    return ip if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6) else None


def _addr16(raw: bytes) -> tuple[int, int]:
    if len(raw) == 4:
        raw = b"\0" * 10 + b"\xff\xff" + raw
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


def test_outer_layer_agrees_with_dpkt_on_every_shared_capture(data_dir: Path) -> None:
    """Independent parser, same answer: addresses, protocol, ports and IP length of each record."""
    files = shared_captures(data_dir)
    assert len(files) > 100
    compared = 0
    mismatches: list[str] = []
    for path in files:
        with open(path, "rb") as fh:
            try:
                rd = dpkt.pcapng.Reader(fh) if path.suffix == ".pcapng" else dpkt.pcap.Reader(fh)
                theirs = [bytes(b) for _, b in rd]
                dlt = rd.datalink()
            except (ValueError, dpkt.UnpackError):
                continue
        mine = PcapReader(path)
        k = 0
        for batch in mine:
            cols = D.decode(batch)
            check_invariants(batch, cols)
            outer = np.flatnonzero(cols["parent"] < 0)
            assert len(outer) == len(batch)
            for i, r in enumerate(outer):
                raw = theirs[k + i]
                assert raw == bytes(
                    batch.buf[batch.data_off[i] : batch.data_off[i] + batch.caplen[i]]
                ), f"{path} record {k + i + 1}: bytes differ from dpkt's"
                try:
                    ip = _dpkt_ip(raw, dlt)
                except (dpkt.UnpackError, IndexError, ValueError):
                    continue
                if ip is None or len(ip.src) not in (4, 16):
                    continue
                if isinstance(ip, dpkt.ip.IP) and ip.v != 4:
                    # dpkt trusts the ethertype; a wrong version nibble is an impossible header.
                    assert cols["status"][r] == D.BAD_IP, f"{path} record {k + i + 1}"
                    continue
                got = {c: int(cols[c][r]) for c in ("src_hi", "src_lo", "dst_hi", "dst_lo")}
                want = dict(zip(("src_hi", "src_lo"), _addr16(ip.src), strict=True))
                want |= dict(zip(("dst_hi", "dst_lo"), _addr16(ip.dst), strict=True))
                v6 = isinstance(ip, dpkt.ip6.IP6)
                got["ip_len"] = int(cols["ip_len"][r])
                want["ip_len"] = ip.plen + 40 if v6 else ip.len
                got["proto"] = int(cols["proto"][r])
                want["proto"] = ip.p
                l4 = ip.data
                if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP) and cols["status"][r] == D.OK:
                    got["ports"] = (int(cols["sport"][r]), int(cols["dport"][r]))
                    want["ports"] = (l4.sport, l4.dport)
                if got != want:
                    mismatches.append(f"{path.name}#{k + i + 1}: {got} != {want}")
                compared += 1
            k += len(batch)
        assert k == len(theirs), f"{path}: {k} records, dpkt read {len(theirs)}"
    assert compared > 50_000
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"


def test_addresses_render_like_the_socket_module() -> None:
    """Guards the cross-check's own address mapping with a known value."""
    hi, lo = _addr16(socket.inet_pton(socket.AF_INET, "192.0.2.1"))
    assert (hi, lo) == (0, (0xFFFF << 32) | 0xC0000201)
    hi, lo = _addr16(socket.inet_pton(socket.AF_INET6, "2001:db8::1"))
    assert (hi, lo) == (0x20010DB800000000, 1)


def test_through_a_file_all_link_types(tmp_path: Path) -> None:
    """The reader hands each file's link type to the decoder (not only the in-memory batches)."""
    for linktype, frame in [
        (1, ether(0x0800, IP4_TCP)),
        (229, IP6_TCP),
        (276, sll2(0x800, IP4_TCP)),
    ]:
        path = tmp_path / f"{linktype}.pcap"
        path.write_bytes(classic_pcap([Rec(1, frame)], linktype))
        statuses, dports = [], []
        for batch in PcapReader(path):
            cols = D.decode(batch)
            statuses += cols["status"].tolist()
            dports += cols["dport"].tolist()
        assert statuses == [D.OK] and dports == [80]
