"""New Windows services: a golden case (PsExec, smbexec's %COMSPEC%, an update service) and the
labelled remote-service sample."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mamori.detect.detectors.win_new_service import WinNewServiceParams
from mamori.detect.engine import run_detectors
from support.evtx_samples import SAMPLES, indexed, sample_frames
from support.golden import COLUMNS, assert_key_sufficient, case_frames, detect, expected

ID = "windows.new_service"


def test_golden_case() -> None:
    """PsExec's service installed twice is one high alert; smbexec's 4697 is high; a vendor's
    update service is a low notice; a 7045 outside the System log is not an installation; Sysmon's
    record of the SCM writing an ImagePath in a user folder is high, another program's write or
    another value is nothing."""
    got = run_detectors(case_frames("win_new_service", "winevt"), only=[ID]).alerts
    got = got.sort("dst", "summary").select(COLUMNS)
    assert got.to_dicts() == sorted(
        expected("win_new_service"), key=lambda a: (a["dst"], a["summary"])
    )


def test_labelled_sample_is_found(data_dir: Path) -> None:
    [name] = indexed(data_dir, "Remote_Service02_7045")
    alerts = detect(ID, sample_frames(data_dir / SAMPLES / name))
    assert sorted(alerts["summary"].str.extract(r"service (\S+) installed").to_list()) == [
        "remotesvc", "spoolfool", "spoolsv",
    ]  # fmt: skip
    # cmd.exe and a bare calc.exe as LocalSystem services: an attacker's, not an installer's.
    assert set(alerts["severity"]) == {"high"}
    assert set(alerts["dst"]) == {"WIN-77LTAPHIQ1R.example.corp"}


@pytest.mark.parametrize(
    ("words", "service", "severity"),
    [
        ("psexec_smb_meterpreter", "hello", "high"),  # %COMSPEC% ... powershell -enc
        ("persist_as_service_sysmon", "HxUpdateServiceInfo", "high"),  # from a user's Desktop
        ("PanacheSysmon_vs_AtomicRedTeam01", "AtomicTestService", "low"),  # T1050's test binary
    ],
)
def test_sysmon_only_samples_are_found(
    data_dir: Path, words: str, service: str, severity: str
) -> None:
    [name] = indexed(data_dir, words)
    alerts = detect(ID, sample_frames(data_dir / SAMPLES / name))
    assert alerts["summary"].str.extract(r"service (\S+) installed").to_list() == [service]
    assert alerts["severity"].to_list() == [severity]


def test_each_host_alone_gives_its_own_alerts() -> None:
    rows = case_frames("win_new_service", "winevt")["winevt"].collect()
    assert_key_sufficient(lambda g: detect(ID, {"winevt": g.lazy()}), rows, "host")


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(WinNewServiceParams(), window_minutes=-5.0)
