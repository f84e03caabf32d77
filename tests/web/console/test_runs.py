"""The console's patrol runner: a run is the patrol's own output folder, and what it found is
published for open pages."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mamori.web.console.runs import Run, RunError, Runs
from mamori.web.events import Broker


def test_a_finished_run_is_the_patrols_output_folder(made) -> None:  # type: ignore[no-untyped-def]
    run = made.runs.get(made.run_id)
    assert run is not None and run.state == "done" and run.status["by"] == "fixture"
    report = json.loads((run.folder / "report.json").read_text())
    assert report["schema"] == "mamori.patrol.report/1"
    assert (run.folder / "report.html").is_file() and (run.folder / "lake" / "conn").is_dir()
    assert run.status["alerts"] == report["summary"]["alerts"]
    assert run.status["incidents"] == len(report["incidents"]) == 1


def test_the_run_publishes_its_alerts_incidents_and_end_in_order(made) -> None:  # type: ignore[no-untyped-def]
    events = made.broker.since(0)
    kinds = [e.kind for e in events]
    assert kinds[0] == "run" and events[0].data["state"] == "running"
    assert kinds[-1] == "run" and events[-1].data["state"] == "done"
    report = made.runs.get(made.run_id).report()
    alerts = [a for inc in report["incidents"] for a in inc["alerts"]]
    assert kinds.count("alert") == len(alerts) and kinds.count("incident") == 1
    incident = next(e for e in events if e.kind == "incident")
    assert incident.data["id"] == report["incidents"][0]["id"]
    # and the finished run's report goes to ``after`` (the console plans decisions there)
    assert [run_id for run_id, _ in made.after] == [made.run_id]
    assert made.after[0][1]["incidents"] == report["incidents"]


def test_incidents_are_listed_once_worst_first(made) -> None:  # type: ignore[no-untyped-def]
    found = made.runs.incidents()
    assert [inc["id"] for _, inc in found] == [
        inc["id"] for inc in made.runs.get(made.run_id).report()["incidents"]
    ]
    assert made.runs.incident(found[0][1]["id"])[0].id == made.run_id
    assert made.runs.incident("INC-nothing") is None


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b"])
def test_a_run_id_cannot_leave_the_runs_folder(made, name: str) -> None:  # type: ignore[no-untyped-def]
    assert made.runs.get(name) is None


def test_captures_outside_the_allowed_folders_are_refused(tmp_path: Path, data_dir: Path) -> None:
    runs = Runs(tmp_path / "runs", Broker(), (data_dir,))
    outside = tmp_path / "x.pcap"
    outside.write_bytes(b"\xd4\xc3\xb2\xa1")
    with pytest.raises(RunError, match="outside the capture folders"):
        runs.check_capture(str(outside))
    sneaky = data_dir / ".." / outside.name  # resolved before it is checked
    with pytest.raises(RunError):
        runs.check_capture(str(sneaky))
    with pytest.raises(RunError, match="no such file"):
        runs.check_capture(str(data_dir / "no-such.pcap"))
    with pytest.raises(RunError, match="not a file"):
        runs.check_capture(str(data_dir))


def _finish(runs: Runs, run_id: str) -> Run:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = runs.get(run_id)
        assert run is not None
        if run.state != "running":
            return run
        time.sleep(0.1)
    raise AssertionError("run did not finish")


def test_a_file_that_is_no_capture_is_reported_by_the_run(tmp_path: Path) -> None:
    bad = tmp_path / "caps" / "not-a-capture.pcap"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not a capture at all")
    runs = Runs(tmp_path / "runs", Broker(), (tmp_path / "caps",))
    done = _finish(runs, runs.start([runs.check_capture(str(bad))], by="t").id)
    assert done.state == "done"
    assert "not a pcap or pcapng capture" in done.report()["inputs"][0]["error"]  # type: ignore[index]


def test_a_failed_run_says_why_and_publishes_it(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mamori.patrol

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(mamori.patrol, "patrol", broken)
    broker = Broker()
    runs = Runs(tmp_path / "runs", broker, (data_dir,))
    capture = runs.check_capture(str(data_dir / "zeek-btest/Traces/ssh/sshguess.pcap"))
    done = _finish(runs, runs.start([capture], by="t").id)
    assert done.state == "failed" and done.status["error"] == "OSError: disk full"
    last = broker.since(0)[-1]
    assert (
        last.kind == "run" and last.data["state"] == "failed" and "disk full" in last.data["error"]
    )
