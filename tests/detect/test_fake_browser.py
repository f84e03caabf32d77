"""c2.fake_browser: golden case, the shared capture it was written for, and the partition property."""

from __future__ import annotations

from pathlib import Path

from mamori.detect.engine import run_detectors
from support.golden import assert_case_partitions, capture_frames, expected, golden_alerts

ID = "c2.fake_browser"
CAPTURE = "zeek-detector-pcaps/zeek-agenttesla-detector/testing/Traces/0e328ab7-12b2-4843-8717-a5b3ebef33a8.pcap"


def test_golden_case() -> None:
    assert golden_alerts("fake_browser", "http", ID) == expected("fake_browser")


def test_the_shared_capture_is_found(data_dir: Path) -> None:
    got = run_detectors(capture_frames(data_dir / CAPTURE), only=[ID]).alerts
    assert got.select("src", "dst").rows() == [("192.168.100.134", "78.41.139.12")]
    assert "T1041" in got["techniques"][0]


def test_each_source_alone_gives_its_own_alerts() -> None:
    assert_case_partitions(ID, "fake_browser", "http")
