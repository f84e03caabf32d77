"""Runs the log sensors' fuzz target for a bounded time, so CI exercises it on every run.

A subprocess with a timeout, as for the capture target: a sensor that loops forever must fail the
test, not hang it. The seed is fixed so a failure reproduces (override with ``MAMORI_FUZZ_SEED``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[3] / "fuzz" / "fuzz_logs.py"
SECONDS = 20


@pytest.mark.slow
def test_log_fuzz_finds_nothing(data_dir: Path, tmp_path: Path) -> None:
    seed = os.environ.get("MAMORI_FUZZ_SEED", "20251125")
    cmd = [sys.executable, str(FUZZ), "--seconds", str(SECONDS), "--seed", seed]
    cmd += ["--data", str(data_dir), "--crash-dir", str(tmp_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"log fuzz run hung (seed {seed}): a sensor does not terminate")
    crashes = sorted(tmp_path.glob("crash-*"))
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\ncrash inputs: {crashes}"
    assert proc.stdout.startswith("ok: ") and not crashes
    assert int(proc.stdout.split()[1]) > 300, proc.stdout  # it really ran
    for kind in ("evtx", "zeek", "jsonl", "syslog", "cowrie"):  # every sensor had seeds
        assert f"{kind} " in proc.stdout.split("seed logs: ")[1], proc.stdout


def test_log_fuzz_checker_reports_a_failed_sensor(tmp_path: Path) -> None:
    """The checker passes a good log and flags a sensor that raised (which ingest_log absorbs)."""
    sys.path.insert(0, str(FUZZ.parent))
    try:
        import fuzz_logs
    finally:
        sys.path.remove(str(FUZZ.parent))
    from mamori.sensors.registry import registered_sensors

    path = tmp_path / "app.jsonl"
    path.write_text('{"ts": "2024-01-01T00:00:00Z", "msg": "a"}\n' * 3)
    sensor = registered_sensors()["jsonl"]
    assert sum(fuzz_logs.check_log(path, sensor).rows.values()) == 3

    def broken(path: Path, ctx: object) -> None:
        raise RuntimeError("a bug in the sensor")

    with pytest.raises(fuzz_logs.InvariantError, match="sensor failed"):
        fuzz_logs.check_log(path, dataclasses.replace(sensor, read=broken))
