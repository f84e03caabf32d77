"""Floods per victim: the spoofed SYN-flood capture, a golden case, what must stay quiet, and the
properties (row order, unrelated traffic, key sufficiency) that let the engine partition by victim."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.detect.engine import run_detectors
from mamori.flows.pipeline import tables_of
from mamori.schema import schema_of

CASES = Path(__file__).resolve().parent.parent / "cases"
DDOS = ["ddos.flood", "ddos.amplification", "ddos.backscatter", "ddos.tcp_reflection"]
T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
NORMAL = [
    "zeek-btest/Traces/http/get.pcap",
    "zeek-btest/Traces/wikipedia.pcap",
    "zeek-btest/Traces/ssh/sshguess.pcap",
    "zeek-btest/Traces/dns/dns-binds.pcap",
    "zeek-btest/Traces/dns/mdns.pcap",
    "zeek-btest/Traces/dns/dynamic-update.pcap",
    "zeek-detector-pcaps/zeek-agenttesla-detector/testing/Traces/db9f075c-7879-4957-923a-f79fac957a2d.pcap",
    "zeek-detector-pcaps/zeek-asyncrat-detector/testing/Traces/30a385ed-171e-4f15-ac3f-08c96be7bfd1.pcap",
    "zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/sandcat.pcap",
    "pcaps-esnet-scanners/attacks/scanners/masscan/tcp_0_1000_20190821.pcap",  # a scan is not a flood
]


def conn(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Conn rows (only the columns given; ``ts`` as ISO text or datetime) in the lake's schema."""
    base = pl.from_arrow(schema_of("conn").empty_table())
    assert isinstance(base, pl.DataFrame)
    df = pl.DataFrame(rows, infer_schema_length=None)
    if df.schema["ts"] == pl.String:
        df = df.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
    return pl.concat([base, df], how="diagonal_relaxed").cast(base.schema)  # type: ignore[arg-type]


def row(i: int, **kw: Any) -> dict[str, Any]:
    """One conn row ``i`` ms*10 after T0 (unique ts, so evidence order never depends on ties)."""
    base = dict(ts=T0 + timedelta(milliseconds=10 * i), uid=f"C{i:07d}", orig_h="198.51.100.1", orig_p=40000,
                resp_h="203.0.113.10", resp_p=80, proto="tcp", conn_state="S0", history="S", orig_pkts=1,
                orig_ip_bytes=40, resp_pkts=0, resp_ip_bytes=0, source="t", first_record=i, last_record=i)  # fmt: skip
    return base | kw


def run(frame: pl.DataFrame, only: list[str] = DDOS) -> pl.DataFrame:
    return run_detectors({"conn": frame.lazy()}, only=only).alerts


def capture(data_dir: Path, rel: str) -> pl.DataFrame:
    tables, _ = tables_of([data_dir / rel])
    return pl.from_arrow(tables["conn"]) if "conn" in tables else conn([row(0)]).clear()  # type: ignore[return-value]


def golden(name: str, only: list[str]) -> None:
    rows = [json.loads(line) for line in (CASES / name / "input.jsonl").read_text().splitlines()]
    got = (
        run(conn(rows), only)
        .select("detector", "dst", "severity", "count", "techniques")
        .to_dicts()
    )
    assert got == json.loads((CASES / name / "expected.json").read_text())


def syn_flood(
    victim: str = "203.0.113.10", sources: int = 60, n: int = 600, start: int = 0
) -> list[dict[str, Any]]:
    return [
        row(start + i, orig_h=f"198.51.{i % sources}.{i % 7 + 1}", resp_h=victim) for i in range(n)
    ]


def test_spoofed_syn_flood_capture(data_dir: Path) -> None:
    alerts = run(capture(data_dir, "pcaps-ddos-stopddos/pkt.TCP.synflood.spoofed.pcap"))
    assert alerts["detector"].to_list() == ["ddos.flood"]
    a = alerts.row(0, named=True)
    assert a["dst"] == "10.10.10.10" and a["techniques"] == ["T1498.001", "T1499.001"]
    assert a["severity"] == "critical" and a["count"] > 37_000 and len(a["evidence"]) == 50
    assert "SYN flood" in a["summary"] and "10.10.10.10" in a["summary"]


def test_golden_case() -> None:
    golden("ddos_synflood", ["ddos.flood"])


@pytest.mark.parametrize("rel", NORMAL)
def test_quiet_on_normal_traffic(data_dir: Path, rel: str) -> None:
    assert run(capture(data_dir, rel)).height == 0


def test_udp_and_icmp_floods_from_one_source_by_rate() -> None:
    udp = [
        row(i, proto="udp", history="D", resp_p=27015, ts=T0 + timedelta(microseconds=100 * i))
        for i in range(3000)
    ]
    icmp = [row(5000 + i, proto="icmp", history=None, orig_p=8, resp_p=0, resp_h="203.0.113.11",
                ts=T0 + timedelta(microseconds=100 * i + 7)) for i in range(3000)]  # fmt: skip
    alerts = run(conn(udp + icmp))
    assert sorted(alerts["summary"].str.extract(r"under (\w+)").to_list()) == ["ICMP", "UDP"]


def test_answered_busy_server_and_fast_port_scan_are_not_floods() -> None:
    busy = [
        row(i, orig_h=f"100.{i % 200}.0.1", history="ShADadFf", conn_state="SF", resp_pkts=5)
        for i in range(2000)
    ]
    scan = [row(3000 + i, resp_p=i, history="Sr", conn_state="REJ", ts=T0 + timedelta(microseconds=50 * i))
            for i in range(5000)]  # fmt: skip
    syslog = [
        row(9000 + i, orig_h=f"10.1.{i % 100}.1", proto="udp", resp_p=514, history="D")
        for i in range(2000)
    ]
    assert run(conn(busy + scan + syslog)).height == 0


def test_key_is_sufficient() -> None:
    """The alerts of a subset of victims come from those victims' rows alone."""
    full = conn(
        syn_flood("203.0.113.10")
        + syn_flood("203.0.113.11", start=1000)
        + syn_flood("203.0.113.12", 40, 700, 2000)
    )
    everything = run(full, ["ddos.flood"])
    subset = run(
        full.filter(pl.col("resp_h").is_in(["203.0.113.11", "203.0.113.12"])), ["ddos.flood"]
    )
    assert everything.height == 3
    assert subset.equals(everything.filter(pl.col("dst") != "203.0.113.10"))


benign_rows = st.lists(
    st.tuples(st.integers(0, 6000), st.integers(1, 254), st.sampled_from(["tcp", "udp", "icmp"]), st.integers(0, 65535)),
    max_size=60,
).map(
    lambda xs: [
        row(100_000 + k, ts=T0 + timedelta(milliseconds=10 * t, microseconds=k + 1), orig_h=f"172.16.0.{h}",
            resp_h=f"172.17.0.{h}", proto=p, resp_p=port, history="ShADadFf" if p == "tcp" else "Dd",
            orig_pkts=4, resp_pkts=4, orig_p=8 if p == "icmp" else 50000)
        for k, (t, h, p, port) in enumerate(xs)
    ]
)  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), benign=benign_rows)
def test_row_order_and_unrelated_traffic_do_not_change_alerts(
    seed: int, benign: list[dict[str, Any]]
) -> None:
    attack = conn(syn_flood())
    expected = run(attack)
    mixed = pl.concat([attack, conn(benign)]) if benign else attack
    mixed = mixed.sample(fraction=1.0, shuffle=True, seed=seed)
    assert run(mixed).filter(pl.col("dst") == "203.0.113.10").equals(expected)
