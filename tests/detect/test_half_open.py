"""scan.half_open: golden case, the nmap -p80 trace it was written for, the benign trace with one
such reset, and the partition property."""

from __future__ import annotations

from pathlib import Path

from mamori.detect.engine import run_detectors
from support.golden import assert_case_partitions, capture_frames, expected, golden_alerts

ID = "scan.half_open"


def test_golden_case() -> None:
    """Three open ports probed and reset: found; one port checked again and again, one reset
    beside a real session, refusals, and two probes in two windows: not."""
    got = golden_alerts("half_open", "conn", ID)
    assert got == expected("half_open")
    assert [a["src"] for a in got] == ["10.10.0.5"]


def test_nmap_syn_scan_of_one_web_port_is_found(data_dir: Path) -> None:
    capture = "pcaps-esnet-scanners/attacks/scanners/nmap/nmap_80_vanilla.pcap"
    got = run_detectors(capture_frames(data_dir / capture), only=[ID]).alerts
    assert got.select("src", "dst", "count").rows() == [("10.87.1.10", "130.211.223.103", 3)]


def test_one_reset_after_a_syn_ack_is_left_alone(data_dir: Path) -> None:
    """The benign Modbus trace holds one such connection (a late SYN-ACK looks the same)."""
    capture = "zeek-btest/Traces/modbus/modbus-and-non-modbus-p502.pcap"
    frames = capture_frames(data_dir / capture)
    assert frames["conn"].collect()["history"].to_list().count("ShR") == 1
    assert run_detectors(frames, only=[ID]).alerts.height == 0


def test_each_source_alone_gives_its_own_alerts() -> None:
    assert_case_partitions(ID, "half_open", "conn")
