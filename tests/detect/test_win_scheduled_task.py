"""Scheduled tasks created: a golden case (an encoded PowerShell task, a hidden one, Google's
updater, a TaskScheduler 106) and the labelled samples that register tasks (4698)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mamori.detect.detectors.win_scheduled_task import WinScheduledTaskParams
from mamori.detect.engine import run_detectors
from support.evtx_samples import SAMPLES, indexed, sample_frames
from support.golden import COLUMNS, assert_key_sufficient, case_frames, detect, expected

ID = "windows.scheduled_task"


def test_golden_case() -> None:
    """Encoded PowerShell and a hidden task are high; an updater and Defrag (106) are low; a task
    updated (4702) is not a creation; Sysmon's schtasks /create and the task's file are one task
    (mshta from the Internet: high), and /run or a file in another Tasks folder are nothing."""
    got = run_detectors(case_frames("win_scheduled_task", "winevt"), only=[ID]).alerts
    got = got.sort("dst", "summary").select(COLUMNS)
    assert got.to_dicts() == sorted(
        expected("win_scheduled_task"), key=lambda a: (a["dst"], a["summary"])
    )


@pytest.mark.parametrize(
    ("words", "task", "action"),
    [
        ("temp_scheduled_task_4698", "\\CYAlyNSS", "cmd.exe /C tasklist > %windir%\\Temp\\"),
        ("ScheduledTask_ATSVC_target", "\\CYAlyNSS", "cmd.exe /C tasklist > %windir%\\Temp\\"),
        ("upnp_localsvc_4698", "\\FullPowersTask", "C:\\Users\\Public\\Tools\\TokenManip\\"),
        # Sysmon only (no task auditing): schtasks /create and the task file.
        ("mshta_scheduledtask_sysmon", "MSOFFICE_", "mshta.exe https://hotelesms.com/"),
        ("exec_as_system_via_schedtask", "elevator", "appdata\\local\\temp\\elevator.xml"),
        ("rundll32_cmd_schtask", "DataUsageHandlers", "AppData\\Local\\Temp\\"),
    ],
)
def test_labelled_samples_are_found(data_dir: Path, words: str, task: str, action: str) -> None:
    [name] = indexed(data_dir, words)
    alerts = detect(ID, sample_frames(data_dir / SAMPLES / name))
    assert alerts.height == 1
    a = alerts.row(0, named=True)
    assert a["severity"] == "high" and a["techniques"] == ["T1053.005"]
    assert f"task {task} created" in a["summary"] and action in a["summary"]


def test_each_host_alone_gives_its_own_alerts() -> None:
    rows = case_frames("win_scheduled_task", "winevt")["winevt"].collect()
    assert_key_sufficient(lambda g: detect(ID, {"winevt": g.lazy()}), rows, "host")


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(WinScheduledTaskParams(), window_minutes=0.0)
