"""The log-sensor contract: registration, content seeds, and the driver keeping good records."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from mamori.sensors.logingest import ingest_log
from mamori.sensors.registry import (
    LogFormatError,
    LogSensor,
    ReadContext,
    content_seed,
    log_sensor,
    registered_sensors,
)


def test_every_sensor_writes_known_tables_and_sniffs_generic_last() -> None:
    sensors = registered_sensors()
    assert "jsonl" in sensors and "evtx" in sensors
    assert list(sensors)[-1] == "jsonl"  # the generic fallback is tried after every specific one
    with pytest.raises(ValueError, match="unknown table"):
        log_sensor("bogus", tables=("nope",), sniff=lambda h: False)
    with pytest.raises(ValueError, match="registered twice"):
        log_sensor("jsonl", tables=("jsonlog",), sniff=lambda h: False)(lambda p, c: iter(()))


def test_seed_follows_content_not_path(tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    a.write_text("x" * 100)
    b = tmp_path / "sub" / "b.log"
    b.parent.mkdir()
    shutil.copy(a, b)
    assert content_seed(a) == content_seed(b)
    b.write_text("y" * 100)
    assert content_seed(a) != content_seed(b)
    ctx = ReadContext(path=a, seed=content_seed(a))
    uids = ctx.uids("J", pa.array([1, 22], pa.int64())).to_pylist()
    assert uids == [f"J{ctx.seed}.1", f"J{ctx.seed}.22"]


def _jsonlog(n: int, first: int) -> pa.Table:
    import datetime as dt

    ts = [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)] * n
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "uid": [f"J.{first + i}" for i in range(n)],
            "file": ["f"] * n,
            "record": list(range(first, first + n)),
            "host": [None] * n,
            "dataset": ["d"] * n,
            "data": ["{}"] * n,
        }
    )


def test_driver_keeps_batches_before_a_fatal_problem(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("whatever")

    def read(p: Path, ctx: ReadContext) -> Iterator[tuple[str, pa.Table]]:
        yield "jsonlog", _jsonlog(3, 1)
        ctx.warn(4, "garbled")
        yield "jsonlog", _jsonlog(2, 5)
        raise LogFormatError(7, "truncated record")

    sensor = LogSensor("t", ("jsonlog",), lambda h: True, read, 1, "")
    got: list[pa.Table] = []
    stats = ingest_log(path, sensor, lambda t, b: got.append(b))
    assert sum(t.num_rows for t in got) == 5 == stats.records
    assert stats.problem == f"{path}: record 7: truncated record"
    assert stats.error is None
    assert stats.skipped == 1 and stats.warnings == [f"{path}: record 4: garbled"]


def test_driver_reports_a_file_it_could_not_read_at_all(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("whatever")

    def read(p: Path, ctx: ReadContext) -> Iterator[tuple[str, pa.Table]]:
        raise LogFormatError(1, "not this format")
        yield  # pragma: no cover

    stats = ingest_log(path, LogSensor("t", ("jsonlog",), bool, read, 1, ""), lambda t, b: None)
    assert stats.records == 0 and stats.problem is None
    assert stats.error == f"{path}: record 1: not this format"
