"""Runs the plain-mode fuzz target for a bounded time so CI exercises it on every run.

A subprocess, because a hang in a compiled kernel cannot be interrupted in-process: the timeout is
the hang detector. The seed is fixed so a failure reproduces (override with ``MAMORI_FUZZ_SEED``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_pcap.py"
SECONDS = 20


@pytest.mark.slow
def test_plain_fuzz_finds_nothing(data_dir: Path, tmp_path: Path) -> None:
    seed = os.environ.get("MAMORI_FUZZ_SEED", "20251123")
    cmd = [sys.executable, str(FUZZ), "--seconds", str(SECONDS), "--seed", seed]
    cmd += ["--data", str(data_dir), "--crash-dir", str(tmp_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"fuzz run hung (seed {seed}): a kernel loop does not terminate")
    crashes = sorted(tmp_path.glob("crash-*"))
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\ncrash inputs: {crashes}"
    assert proc.stdout.startswith("ok: ") and not crashes
    runs = int(proc.stdout.split()[1])
    assert runs > 1000, proc.stdout  # it really ran, on real seeds


@pytest.mark.slow
def test_pipeline_fuzz_finds_nothing(data_dir: Path, tmp_path: Path) -> None:
    """The whole ingest on mutated captures: no exception, no analyser failure, records that hold
    together, and every fourth input split over two workers (every fourth other one read in one
    batch) exactly as one process writes it in many."""
    seed = os.environ.get("MAMORI_FUZZ_SEED", "20251125")
    cmd = [sys.executable, str(FUZZ), "--seconds", str(SECONDS), "--seed", seed, "--pipeline"]
    cmd += ["--data", str(data_dir), "--crash-dir", str(tmp_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pipeline fuzz run hung (seed {seed})")
    crashes = sorted(tmp_path.glob("crash-*"))
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\ncrash inputs: {crashes}"
    assert proc.stdout.startswith("ok: ") and not crashes
    assert int(proc.stdout.split()[1]) > 500, proc.stdout


def test_fuzz_checker_on_known_inputs(tmp_path: Path) -> None:
    """The checker itself: a valid capture passes with its records, garbage is a clean error."""
    sys.path.insert(0, str(FUZZ.parent))
    try:
        import fuzz_pcap
    finally:
        sys.path.remove(str(FUZZ.parent))
    from support.pcap_writer import Rec, classic_pcap, ether

    good = classic_pcap([Rec(k, ether(0x0800, b"\x45" + b"\0" * 40)) for k in range(3)])
    assert fuzz_pcap.check_bytes(good, tmp_path) == 3
    assert fuzz_pcap.check_bytes(b"not a capture", tmp_path) == 0
    assert fuzz_pcap.check_bytes(b"", tmp_path) == 0


def test_pipeline_checker_on_known_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline checker counts connections, and a swallowed analyser failure is a bug to it."""
    sys.path.insert(0, str(FUZZ.parent))
    try:
        import fuzz_pcap
    finally:
        sys.path.remove(str(FUZZ.parent))
    from support.pcap_writer import Rec, classic_pcap, ether, ip4, ipv4, udp

    query = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")
    packets = [
        ipv4(ip4("10.0.0.1"), ip4("10.0.0.53"), 17, udp(5353 + k, 53, query)) for k in range(3)
    ]
    path = tmp_path / "dns.pcap"
    path.write_bytes(classic_pcap([Rec(k, ether(0x0800, p)) for k, p in enumerate(packets)]))
    assert fuzz_pcap.check_pipeline(path, shards=True) == 3

    def broken(batch: object) -> None:
        raise RuntimeError("a bug in the DNS column path")

    monkeypatch.setattr("mamori.flows.dns_batch.analyze", broken)
    with pytest.raises(fuzz_pcap.InvariantError, match="DNS column path failed"):
        fuzz_pcap.check_pipeline(path, shards=False)
