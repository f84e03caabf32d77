"""scan.tools: golden case, the shared capture it was written for, and the partition property."""

from __future__ import annotations

from pathlib import Path

from mamori.detect.engine import run_detectors
from support.golden import assert_case_partitions, capture_frames, expected, golden_alerts

ID = "scan.tools"
CAPTURE = "pcaps-esnet-scanners/attacks/scanners/nmap/nmap_80_all.pcap"


def test_golden_case() -> None:
    assert golden_alerts("scan_tools", "http", ID) == expected("scan_tools")


def test_the_shared_capture_is_found(data_dir: Path) -> None:
    got = run_detectors(capture_frames(data_dir / CAPTURE), only=[ID]).alerts
    assert got.select("src", "dst").rows() == [("10.87.1.10", "130.211.223.103")]
    assert "T1046" in got["techniques"][0]


def test_each_source_alone_gives_its_own_alerts() -> None:
    assert_case_partitions(ID, "scan_tools", "http")
