"""Runs the log sensors' fuzz target for a bounded time so CI exercises it on every run
(``support.fuzzing``: a subprocess with a timeout, so a sensor that loops forever fails the test
instead of hanging it; a fixed seed), and checks its checker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from support.fuzzing import run_target, target_module

SECONDS = 20


@pytest.mark.slow
def test_log_fuzz_finds_nothing(data_dir: Path, tmp_path: Path) -> None:
    runs, out = run_target("fuzz_logs", SECONDS, "20251125", data_dir, tmp_path)
    assert runs > 300, out  # it really ran
    for kind in ("evtx", "zeek", "jsonl", "syslog", "cowrie", "eve"):  # every sensor had seeds
        assert f"{kind} " in out.split("seed logs: ")[1], out


def test_log_fuzz_checker_reports_a_failed_sensor(tmp_path: Path) -> None:
    """The checker passes a good log and flags a sensor that raised (which ingest_log absorbs)."""
    fuzz_logs = target_module("fuzz_logs")
    from mamori.sensors.registry import registered_sensors

    path = tmp_path / "app.jsonl"
    path.write_text('{"ts": "2024-01-01T00:00:00Z", "msg": "a"}\n' * 3)
    sensor = registered_sensors()["jsonl"]
    assert sum(fuzz_logs.check_log(path, sensor).rows.values()) == 3

    def broken(path: Path, ctx: object) -> None:
        raise RuntimeError("a bug in the sensor")

    with pytest.raises(fuzz_logs.InvariantError, match="sensor failed"):
        fuzz_logs.check_log(path, dataclasses.replace(sensor, read=broken))
