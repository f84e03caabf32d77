"""honeypot.attacker: one alert per attacker, saying what it did, on the golden case and real logs."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from mamori.detect.base import registered
from mamori.detect.engine import run_detectors
from mamori.schema import schema_of
from mamori.sensors.logingest import ingest_log
from mamori.sensors.registry import registered_sensors

CASE = Path(__file__).resolve().parent.parent / "cases" / "honeypot"


def _frame(rows: list[dict[str, object]]) -> pl.LazyFrame:
    empty = pl.from_arrow(schema_of("honeypot").empty_table())
    df = pl.DataFrame(rows).with_columns(
        pl.col("ts").str.to_datetime(time_unit="us", time_zone="UTC")
    )
    return pl.concat([empty, df], how="diagonal_relaxed").lazy()  # type: ignore[list-item]


def test_golden_case() -> None:
    rows = [json.loads(x) for x in (CASE / "input.jsonl").read_text().splitlines()]
    expected = json.loads((CASE / "expected.json").read_text())
    got = registered()["honeypot.attacker"].run({"honeypot": _frame(rows)}).collect()
    got = got.sort("src").select("src", "dst", "severity", "techniques", "domains", "count")
    assert got.to_dicts() == expected


def test_client_chatter_alone_is_not_counted() -> None:
    rows = [
        {"ts": "2024-05-01T10:00:00Z", "uid": "H1", "event": "cowrie.client.version",
         "src_ip": "198.51.100.9", "file": "f", "record": 1},
    ]  # fmt: skip
    got = registered()["honeypot.attacker"].run({"honeypot": _frame(rows)}).collect()
    assert got.height == 0


def test_shared_logs_every_source_is_an_attacker(data_dir: Path) -> None:
    frames = []
    for path in sorted((data_dir / "logs/cowrie-honeypot").glob("cowrie.json.*")):
        ingest_log(
            path,
            registered_sensors()["cowrie"],
            lambda t, b: frames.append(pl.from_arrow(b)),  # type: ignore[arg-type]
        )
    honeypot = pl.concat(frames)
    run = run_detectors({"honeypot": honeypot.lazy()}, only=["honeypot.attacker"])
    alerts = run.alerts
    sources = set(honeypot.filter(~pl.col("event").str.starts_with("cowrie.client."))["src_ip"])
    assert set(alerts["src"]) == sources
    # Those who ran commands are the medium ones, with the Unix shell technique.
    typed = set(honeypot.filter(pl.col("event") == "cowrie.command.input")["src_ip"])
    medium = alerts.filter(pl.col("severity") == "medium")
    assert set(medium["src"]) == typed
    assert all("T1059.004" in t for t in medium["techniques"])
    # Evidence names honeypot records of that source.
    row = medium.row(0, named=True)
    mine = set(honeypot.filter(pl.col("src_ip") == row["src"])["uid"])
    assert row["evidence_table"] == "honeypot" and set(row["evidence"]) <= mine
