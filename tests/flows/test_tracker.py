"""The connection tracker on crafted conversations: each case is one rule of Zeek's conn.log.

The corpus conformance test shows the rules hold on real traffic; these cases pin each rule down on
its own, so a regression names the rule it broke.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mamori.flows.pipeline import tables_of
from support.pcap_writer import (
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    Rec,
    classic_pcap,
    ether,
    icmp,
    ip4,
    ipv4,
    tcp,
    udp,
)

A, B = ip4("10.0.0.1"), ip4("192.0.2.80")
T0 = 1_700_000_000 * 10**9
MS = 1_000_000


def _tcp(
    src: bytes, dst: bytes, sp: int, dp: int, flags: int, seq: int, ack: int, data: bytes = b""
) -> bytes:
    return ether(0x0800, ipv4(src, dst, 6, tcp(sp, dp, data, seq=seq, ack=ack, flags=flags)))


def _conn(tmp_path: Path, frames: list[tuple[int, bytes]]) -> pl.DataFrame:
    path = tmp_path / "t.pcap"
    path.write_bytes(classic_pcap([Rec(T0 + t, f) for t, f in frames]))
    tables, stats = tables_of([path])
    assert stats[0].error is None and stats[0].problem is None
    return pl.from_arrow(tables["conn"]).sort("ts")  # type: ignore[return-value]


def _handshake(c: int = 40000, s: int = 80) -> list[tuple[int, bytes]]:
    return [
        (0, _tcp(A, B, c, s, TCP_SYN, 100, 0)),
        (1 * MS, _tcp(B, A, s, c, TCP_SYN | TCP_ACK, 500, 101)),
        (2 * MS, _tcp(A, B, c, s, TCP_ACK, 101, 501)),
    ]


def test_full_close_is_sf_with_sizes_from_sequence_numbers(tmp_path: Path) -> None:
    frames = [
        *_handshake(),
        (3 * MS, _tcp(A, B, 40000, 80, TCP_ACK | TCP_PSH, 101, 501, b"x" * 10)),
        (4 * MS, _tcp(B, A, 80, 40000, TCP_ACK | TCP_PSH, 501, 111, b"y" * 20)),
        (5 * MS, _tcp(A, B, 40000, 80, TCP_FIN | TCP_ACK, 111, 521)),
        (6 * MS, _tcp(B, A, 80, 40000, TCP_FIN | TCP_ACK, 521, 112)),
        (7 * MS, _tcp(A, B, 40000, 80, TCP_ACK, 112, 522)),
    ]
    [row] = _conn(tmp_path, frames).iter_rows(named=True)
    # The responder never sends a pure ACK here, so no 'a': each letter is a kind of packet seen.
    assert (row["conn_state"], row["history"]) == ("SF", "ShADdFf")
    assert (row["orig_bytes"], row["resp_bytes"]) == (10, 20)
    assert (row["orig_pkts"], row["resp_pkts"]) == (5, 3)
    assert row["orig_ip_bytes"] == 5 * 40 + 10
    # Once both sides have closed, Zeek stops moving the connection's last time: the final ACK
    # (7 ms) does not lengthen it.
    assert row["duration"] == pytest.approx(0.006)


def test_unanswered_syn_is_s0_and_retransmission_stays_one_connection(tmp_path: Path) -> None:
    frames = [
        (0, _tcp(A, B, 40001, 80, TCP_SYN, 7, 0)),
        (1000 * MS, _tcp(A, B, 40001, 80, TCP_SYN, 7, 0)),
    ]
    [row] = _conn(tmp_path, frames).iter_rows(named=True)
    assert (row["conn_state"], row["history"], row["orig_pkts"]) == ("S0", "S", 2)


def test_syn_after_the_attempt_timer_starts_a_new_connection(tmp_path: Path) -> None:
    """Zeek's tcp_attempt_delay (5 s): a SYN seen later belongs to a new connection."""
    frames = [
        (0, _tcp(A, B, 40002, 80, TCP_SYN, 7, 0)),
        (6000 * MS, _tcp(A, B, 40002, 80, TCP_SYN, 7, 0)),
    ]
    rows = _conn(tmp_path, frames)
    assert rows["conn_state"].to_list() == ["S0", "S0"]
    assert rows["uid"].n_unique() == 2


def test_rejected_syn_is_rej(tmp_path: Path) -> None:
    frames = [
        (0, _tcp(A, B, 40003, 81, TCP_SYN, 7, 0)),
        (MS, _tcp(B, A, 81, 40003, TCP_RST | TCP_ACK, 0, 8)),
    ]
    [row] = _conn(tmp_path, frames).iter_rows(named=True)
    assert (row["conn_state"], row["history"]) == ("REJ", "Sr")


def test_originator_reset_after_handshake_is_rsto(tmp_path: Path) -> None:
    frames = [*_handshake(40004), (3 * MS, _tcp(A, B, 40004, 80, TCP_RST | TCP_ACK, 101, 501))]
    [row] = _conn(tmp_path, frames).iter_rows(named=True)
    assert (row["conn_state"], row["history"]) == ("RSTO", "ShAR")


def test_syn_ack_first_from_a_server_port_is_flipped(tmp_path: Path) -> None:
    """likely_server_ports: the side on port 80 is the responder even when it speaks first."""
    frames = [(0, _tcp(B, A, 80, 40005, TCP_SYN | TCP_ACK, 500, 101))]
    [row] = _conn(tmp_path, frames).iter_rows(named=True)
    assert (row["orig_h"], row["orig_p"], row["resp_p"]) == ("10.0.0.1", 40005, 80)
    assert row["history"].startswith("^")


def test_udp_states_and_sizes(tmp_path: Path) -> None:
    q = ether(0x0800, ipv4(A, B, 17, udp(5000, 6000, b"q" * 12)))
    r = ether(0x0800, ipv4(B, A, 17, udp(6000, 5000, b"r" * 30)))
    lone = ether(0x0800, ipv4(A, B, 17, udp(5001, 6001, b"z")))
    rows = _conn(tmp_path, [(0, q), (MS, r), (2 * MS, lone)])
    both, one = rows.iter_rows(named=True)
    assert (both["conn_state"], both["history"], both["orig_bytes"], both["resp_bytes"]) == (
        "SF",
        "Dd",
        12,
        30,
    )
    assert (one["conn_state"], one["history"], one["duration"]) == ("S0", "D", None)


def test_dns_session_ends_after_ten_idle_seconds(tmp_path: Path) -> None:
    """Zeek's DNS analyser ends a UDP session after dns_session_timeout (10 s) without packets."""
    q = ether(0x0800, ipv4(A, B, 17, udp(5353, 53, b"\x12\x34\x01\x00\x00\x01" + b"\0" * 6)))
    rows = _conn(tmp_path, [(0, q), (11_000 * MS, q)])
    assert rows.height == 2


def test_icmp_echo_request_and_reply_are_one_connection(tmp_path: Path) -> None:
    req = ether(0x0800, ipv4(A, B, 1, icmp(8, 0, b"\0\1\0\1" + b"p" * 56)))
    rep = ether(0x0800, ipv4(B, A, 1, icmp(0, 0, b"\0\1\0\1" + b"p" * 56)))
    [row] = _conn(tmp_path, [(0, req), (MS, rep)]).iter_rows(named=True)
    assert (row["proto"], row["orig_p"], row["resp_p"], row["conn_state"]) == ("icmp", 8, 0, "OTH")
    assert (row["orig_pkts"], row["resp_pkts"], row["orig_bytes"]) == (1, 1, 56)


def test_local_networks_follow_zeek_private_space(tmp_path: Path) -> None:
    [row] = _conn(tmp_path, _handshake(40006)).iter_rows(named=True)
    assert (row["local_orig"], row["local_resp"]) == (True, True)  # 192.0.2.0/24 is special-use
