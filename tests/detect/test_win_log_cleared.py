"""Windows logs cleared: a golden case, the labelled sample, every sample that clears a log, and
the provider check (RDP's own event 104 is not a clearing)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest

from mamori.detect.detectors.win_log_cleared import WinLogClearedParams
from mamori.detect.engine import run_detectors
from support.evtx_samples import SAMPLES, indexed, sample_frames
from support.golden import COLUMNS, assert_key_sufficient, case_frames, detect, expected

ID = "windows.log_cleared"


def test_golden_case() -> None:
    """Security and PowerShell cleared together: one alert; a later System 104 elsewhere: its
    own; RDP's 104 and another provider's 1102 are not clearings."""
    got = run_detectors(case_frames("win_log_cleared", "winevt"), only=[ID]).alerts
    assert got.sort("dst").select(COLUMNS).to_dicts() == expected("win_log_cleared")


def test_labelled_sample_is_found(data_dir: Path) -> None:
    [name] = indexed(data_dir, "1102_security_log_cleared")
    alerts = detect(ID, sample_frames(data_dir / SAMPLES / name))
    assert alerts.height == 1
    a = alerts.row(0, named=True)
    assert a["dst"] == "PC01.example.corp" and a["techniques"] == ["T1070.001"]
    assert "Security" in a["summary"] and "EXAMPLE\\user01" in a["summary"]


@pytest.mark.parametrize(
    ("sample", "log"),
    [
        ("Credential Access/Zerologon_CVE-2020-1472_DFIR_System_NetLogon_Error_EventID_5805.evtx",
         "System"),
        ("Discovery/discovery_bloodhound.evtx", "Security"),
    ],
)  # fmt: skip
def test_samples_recorded_after_a_clearing(data_dir: Path, sample: str, log: str) -> None:
    """Many samples begin with the clearing their author did before recording (System 104 and
    Security 1102): each is found, naming the log."""
    alerts = detect(ID, sample_frames(data_dir / SAMPLES / sample))
    assert alerts.height == 1 and f"the {log} log" in alerts["summary"][0]


def test_rdp_event_104_is_not_a_clearing(data_dir: Path) -> None:
    [name] = indexed(data_dir, "RdpCoreTs_104")
    frames = sample_frames(data_dir / SAMPLES / name)
    assert frames["winevt"].filter(pl.col("event_id") == 104).collect().height > 0
    assert detect(ID, frames).height == 0


def test_each_host_alone_gives_its_own_alerts() -> None:
    rows = case_frames("win_log_cleared", "winevt")["winevt"].collect()
    assert_key_sufficient(lambda g: detect(ID, {"winevt": g.lazy()}), rows, "host")


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(WinLogClearedParams(), window_minutes=0.0)
