"""c2.quic_no_name: golden case, Merlin over QUIC, Zeek's nameless QUIC test traces left alone,
and the partition property."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mamori.detect.engine import run_detectors
from support.golden import COLUMNS, capture_frames, case_frames, detect, expected

ID = "c2.quic_no_name"
QUIC = "zeek-btest/Traces/quic"


def test_golden_case() -> None:
    """A long, balanced, nameless session: found; named, brief, DNS over QUIC and a download:
    not."""
    got = run_detectors(case_frames("quic_c2", "conn"), only=[ID]).alerts
    got = got.sort("src", "dst", nulls_last=True).select(COLUMNS)
    assert got.to_dicts() == expected("quic_c2")
    assert got["src"].to_list() == ["10.11.0.5"]


def test_merlin_over_quic_is_found(data_dir: Path) -> None:
    frames = capture_frames(data_dir / QUIC / "merlinc2_Zeek_example.pcapng")
    got = run_detectors(frames, only=[ID]).alerts
    assert got.select("src", "dst").rows() == [("10.0.0.4", "24.199.110.233")]


@pytest.mark.parametrize("trace", ["quicv2-http3-443.pcap", "quicdoq.pcap"])
def test_zeeks_nameless_quic_traces_are_left_alone(data_dir: Path, trace: str) -> None:
    frames = capture_frames(data_dir / QUIC / trace)
    assert frames["ssl"].collect()["server_name"].to_list() == [None]  # nameless, as in Zeek
    assert run_detectors(frames, only=[ID]).alerts.height == 0


def test_each_client_alone_gives_its_own_alerts() -> None:
    frames = {t: f.collect() for t, f in case_frames("quic_c2", "conn").items()}
    whole = detect(ID, {t: f.lazy() for t, f in frames.items()})
    parts = [
        detect(ID, {t: frames[t].filter(pl.col("orig_h") == s).lazy() for t in ("conn", "ssl")})
        for s in frames["conn"]["orig_h"].unique()
    ]
    assert pl.concat(parts).sort("key", "first_seen").equals(whole)
