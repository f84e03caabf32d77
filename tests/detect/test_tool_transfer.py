"""transfer.executable: golden case (HTTP and FTP), the shared captures it was written for, and
the partition property."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mamori.detect.engine import run_detectors
from support.golden import COLUMNS, capture_frames, case_frames, detect, expected

ID = "transfer.executable"


def test_golden_case() -> None:
    """curl's PE and a bare address's ELF are found; a browser's download, BITS from a named
    server, a page, a failed RETR and a text file are not."""
    got = run_detectors(case_frames("tool_transfer", "http"), only=[ID]).alerts
    got = got.sort("src", "dst", nulls_last=True).select(COLUMNS)
    assert got.to_dicts() == expected("tool_transfer")


@pytest.mark.parametrize(
    ("capture", "src", "table", "files"),
    [
        ("zeek-btest/Traces/pe/pe.pcap", "192.168.1.31", "ftp", "3 program(s)"),
        ("zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/manx-tcp.pcap", "172.18.0.3",
         "http", "application/x-executable"),
        ("zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/sandcat.pcap", "172.18.0.3",
         "http", "application/x-executable"),
    ],
)  # fmt: skip
def test_the_shared_downloads_are_found(
    data_dir: Path, capture: str, src: str, table: str, files: str
) -> None:
    got = run_detectors(capture_frames(data_dir / capture), only=[ID]).alerts
    assert got.select("src", "evidence_table").rows() == [(src, table)]
    assert files in got["summary"][0] and got["techniques"].to_list() == [["T1105"]]


def test_each_client_alone_gives_its_own_alerts() -> None:
    frames = {t: f.collect() for t, f in case_frames("tool_transfer", "http").items()}
    whole = detect(ID, {t: f.lazy() for t, f in frames.items()})
    sources = pl.concat([frames["http"]["orig_h"], frames["ftp"]["orig_h"]]).unique()
    parts = [
        detect(ID, {t: frames[t].filter(pl.col("orig_h") == s).lazy() for t in ("http", "ftp")})
        for s in sources
    ]
    assert pl.concat(parts).sort("key", "first_seen").equals(whole)
