"""exfiltration.stealer_mail: golden case, the shared capture it was written for, and the partition property."""

from __future__ import annotations

from pathlib import Path

from mamori.detect.engine import run_detectors
from support.golden import assert_case_partitions, capture_frames, expected, golden_alerts

ID = "exfiltration.stealer_mail"
CAPTURE = "zeek-detector-pcaps/zeek-agenttesla-detector/testing/Traces/db9f075c-7879-4957-923a-f79fac957a2d.pcap"


def test_golden_case() -> None:
    assert golden_alerts("stealer_mail", "smtp", ID) == expected("stealer_mail")


def test_the_shared_capture_is_found(data_dir: Path) -> None:
    got = run_detectors(capture_frames(data_dir / CAPTURE), only=[ID]).alerts
    assert got.select("src", "dst").rows() == [("192.168.100.122", "208.91.198.143")]
    assert "T1048.003" in got["techniques"][0]


def test_each_source_alone_gives_its_own_alerts() -> None:
    assert_case_partitions(ID, "stealer_mail", "smtp")
