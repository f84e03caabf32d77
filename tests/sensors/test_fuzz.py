"""Runs the capture fuzz target, both modes, for a bounded time so CI exercises it on every run
(``support.fuzzing``: a subprocess with a timeout, a fixed seed), and checks its checkers."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.fuzzing import run_target, target_module

SECONDS = 20


@pytest.mark.slow
def test_plain_fuzz_finds_nothing(data_dir: Path, tmp_path: Path) -> None:
    runs, out = run_target("fuzz_pcap", SECONDS, "20251123", data_dir, tmp_path)
    assert runs > 1000, out  # it really ran, on real seeds


@pytest.mark.slow
def test_pipeline_fuzz_finds_nothing(data_dir: Path, tmp_path: Path) -> None:
    """The whole ingest on mutated captures: no exception, no analyser failure, records that hold
    together, and every fourth input split over two workers (every fourth other one read in one
    batch) exactly as one process writes it in many."""
    runs, out = run_target("fuzz_pcap", SECONDS, "20251125", data_dir, tmp_path, "--pipeline")
    assert runs > 500, out


def test_fuzz_checker_on_known_inputs(tmp_path: Path) -> None:
    """The checker itself: a valid capture passes with its records, garbage is a clean error."""
    fuzz_pcap = target_module("fuzz_pcap")
    from support.pcap_writer import Rec, classic_pcap, ether

    good = classic_pcap([Rec(k, ether(0x0800, b"\x45" + b"\0" * 40)) for k in range(3)])
    assert fuzz_pcap.check_bytes(good, tmp_path) == 3
    assert fuzz_pcap.check_bytes(b"not a capture", tmp_path) == 0
    assert fuzz_pcap.check_bytes(b"", tmp_path) == 0


def test_pipeline_checker_on_known_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline checker counts connections, and a swallowed analyser failure is a bug to it."""
    fuzz_pcap = target_module("fuzz_pcap")
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
