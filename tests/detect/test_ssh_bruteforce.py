"""SSH password guessing on Zeek's own guessing trace, a golden case, and quiet normal traffic."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from mamori.detect.engine import run_detectors
from mamori.flows.pipeline import tables_of
from mamori.schema import TABLES, schema_of

CASE = Path(__file__).resolve().parent.parent / "cases" / "ssh_bruteforce"


def _frames(tables: dict) -> dict[str, pl.LazyFrame]:  # type: ignore[type-arg]
    out = {t: pl.from_arrow(schema_of(t).empty_table()).lazy() for t in TABLES}
    out.update({k: pl.from_arrow(v).lazy() for k, v in tables.items()})  # type: ignore[misc]
    return out


def test_zeek_guessing_trace_is_found(data_dir: Path) -> None:
    """Zeek's btest raises SSH::Password_Guessing for 192.168.56.1 on this trace."""
    tables, _ = tables_of([data_dir / "zeek-btest/Traces/ssh/sshguess.pcap"])
    alerts = run_detectors(_frames(tables), only=["bruteforce.ssh"]).alerts
    assert alerts.height == 1
    a = alerts.row(0, named=True)
    assert (a["src"], a["dst"], a["techniques"]) == (
        "192.168.56.1",
        "192.168.56.103",
        ["T1110.001"],
    )
    assert a["count"] >= 10 and len(a["evidence"]) == a["count"]


def test_golden_case() -> None:
    rows = [json.loads(line) for line in (CASE / "input.jsonl").read_text().splitlines()]
    ssh = pl.DataFrame(rows).with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
    frames = _frames({})
    frames["ssh"] = ssh.lazy()
    got = run_detectors(frames, only=["bruteforce.ssh"]).alerts
    expected = json.loads((CASE / "expected.json").read_text())
    assert got.select("src", "dst", "count", "severity").to_dicts() == expected


@pytest.mark.parametrize(
    "capture",
    [
        "zeek-btest/Traces/ssh/ssh.pcap",
        "zeek-btest/Traces/http/get.pcap",
        "zeek-btest/Traces/wikipedia.pcap",
    ],
)
def test_quiet_on_normal_traffic(data_dir: Path, capture: str) -> None:
    tables, _ = tables_of([data_dir / capture])
    assert run_detectors(_frames(tables), only=["bruteforce.ssh"]).alerts.height == 0
