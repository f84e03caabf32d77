"""Unsolicited SYN-ACK/RST/unreachables: SYN-ACK reflection on the victim vs backscatter of an attack
elsewhere, a golden case, sessions caught mid-stream, and key sufficiency."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from detect.test_ddos import T0, capture, conn, golden, row, run
from mamori.detect.detectors import backscatter as bs
from mamori.detect.detectors.amplification import responses
from mamori.detect.detectors.backscatter import unsolicited


def synacks(
    victim: str, sources: int, n: int, step_ms: int, start: int = 0
) -> list[dict[str, Any]]:
    return [row(start + i, ts=T0 + timedelta(milliseconds=step_ms * i, microseconds=start), orig_h=victim,
                orig_p=30000 + i, resp_h=f"45.33.{i % sources}.{i % sources // 250 + 1}", conn_state="OTH",
                history="^h", orig_pkts=0, orig_ip_bytes=0, resp_pkts=1, resp_ip_bytes=44) for i in range(n)]  # fmt: skip


def test_synack_reflection_capture_is_reflection_not_backscatter(data_dir: Path) -> None:
    """Thousands of servers' SYN-ACKs in 150 ms aim at the victim: T1498.002, not backscatter."""
    alerts = run(capture(data_dir, "pcaps-ddos-stopddos/amp.TCP.reflection.SYNACK.pcap"))
    assert alerts["detector"].to_list() == ["ddos.tcp_reflection"]
    a = alerts.row(0, named=True)
    assert (
        a["dst"] == "10.10.10.10"
        and a["techniques"] == ["T1498.002"]
        and a["severity"] in ("high", "critical")
    )


def test_golden_case() -> None:
    golden("backscatter_synack", ["ddos.backscatter", "ddos.tcp_reflection"])


def test_mid_stream_sessions_and_late_rsts_are_not_backscatter() -> None:
    mid = [
        row(i, orig_h="192.0.2.7", resp_h=f"100.80.{i % 40}.1", history="^hADadFf", resp_pkts=9)
        for i in range(200)
    ]
    late = [row(500 + i, orig_h=f"100.81.{i}.1", history="R", orig_pkts=1) for i in range(5)]
    assert run(conn(mid + late)).height == 0


def test_icmp_unreachable_backscatter() -> None:
    rows = [
        row(i * 100, proto="icmp", orig_h=f"100.90.{i}.1", orig_p=3, resp_p=1, history=None)
        for i in range(30)
    ]
    alerts = run(conn(rows))
    assert alerts["detector"].to_list() == ["ddos.backscatter"] and alerts["severity"][0] == "low"


def test_key_is_sufficient() -> None:
    full = conn(synacks("203.0.113.30", 15, 30, 2000) + synacks("203.0.113.31", 500, 2000, 1, start=100_000)
                + synacks("203.0.113.32", 20, 40, 1000, start=200_000))  # fmt: skip
    ids = ["ddos.backscatter", "ddos.tcp_reflection"]
    everything = run(full, ids)
    keep = ["203.0.113.31", "203.0.113.32"]
    mine = pl.concat(
        [
            unsolicited(full.lazy()).select("uid", "victim"),
            responses(full.lazy()).select("uid", "victim"),
        ]
    )
    uids = mine.filter(pl.col("victim").is_in(keep)).collect()["uid"]
    subset = run(full.filter(pl.col("uid").is_in(uids.implode())), ids)
    assert sorted(everything["detector"]) == [
        "ddos.backscatter",
        "ddos.backscatter",
        "ddos.tcp_reflection",
    ]
    assert subset.equals(everything.filter(pl.col("dst").is_in(keep)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 80))
def test_row_order_and_unrelated_traffic_do_not_change_alerts(seed: int, n: int) -> None:
    attack = conn(synacks("203.0.113.30", 15, 30, 2000))
    benign = [row(10_000 + i, ts=T0 + timedelta(milliseconds=300 * i, microseconds=5), orig_h="192.168.3.3",
                  resp_h=f"45.33.{i % 15}.1", history="ShADadFf", conn_state="SF", resp_pkts=6) for i in range(n)]  # fmt: skip
    expected = run(attack)
    mixed = pl.concat([attack, conn(benign)]) if benign else attack
    got = run(mixed.sample(fraction=1.0, shuffle=True, seed=seed)).filter(
        pl.col("dst") == "203.0.113.30"
    )
    assert expected.height == 1 and got.equals(expected)


def test_answers_too_many_to_hold_are_found_again_with_the_same_alerts(monkeypatch: Any) -> None:
    """Unsolicited answers are held for the count's two readings only when few; past
    ``KEEP_ROWS`` (a reflection day) they are found again from the table, with the same alerts."""
    full = conn(synacks("203.0.113.30", 15, 30, 2000) + synacks("203.0.113.31", 500, 2000, 1, start=100_000))  # fmt: skip
    ids = ["ddos.backscatter", "ddos.tcp_reflection"]
    held = run(full, ids)
    monkeypatch.setattr(bs, "KEEP_ROWS", 10)
    found_again = run(full, ids)
    assert held.height == 2 and found_again.equals(held)
    assert sorted(found_again["evidence"].list.len().to_list()) == [30, 50]
