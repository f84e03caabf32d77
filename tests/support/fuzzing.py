"""Running a fuzz target of ``fuzz/`` from a test: bounded, reproducible, and hang-proof.

A subprocess, because a hang in a compiled kernel (or a sensor's loop) cannot be interrupted
in-process: the timeout is the hang detector. The seed is fixed so a failure reproduces
(override it with ``MAMORI_FUZZ_SEED``); a failing input is saved in the test's ``crash_dir``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"


def run_target(
    name: str, seconds: int, seed: str, data_dir: Path, crash_dir: Path, *extra: str
) -> tuple[int, str]:
    """Run ``fuzz/<name>.py`` for ``seconds``; returns (inputs run, its "ok: ..." line) or fails
    the test with the target's own report and the saved inputs."""
    seed = os.environ.get("MAMORI_FUZZ_SEED", seed)
    cmd = [sys.executable, str(FUZZ / f"{name}.py"), "--seconds", str(seconds), "--seed", seed]
    cmd += ["--data", str(data_dir), "--crash-dir", str(crash_dir), *extra]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} {' '.join(extra)} hung (seed {seed})")
    crashes = sorted(crash_dir.glob("crash-*"))
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\ncrash inputs: {crashes}"
    assert proc.stdout.startswith("ok: ") and not crashes, proc.stdout
    return int(proc.stdout.split()[1]), proc.stdout


def target_module(name: str) -> ModuleType:
    """``fuzz/<name>.py`` imported, for tests of its checker."""
    sys.path.insert(0, str(FUZZ))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(FUZZ))
