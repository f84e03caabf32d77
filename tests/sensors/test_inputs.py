"""Inputs are recognised by content: captures, each log format, and what nobody reads."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from mamori.sensors.inputs import CAPTURE, discover, kind_of


def test_capture_and_logs_are_told_apart_by_content(data_dir: Path, tmp_path: Path) -> None:
    pcap = data_dir / "zeek-btest/Traces/ssh/sshguess.pcap"
    evtx = next((data_dir / "evtx-attack-samples").rglob("*.evtx"))
    # Names lie: a capture without a capture suffix, an EVTX export renamed.
    shutil.copy(pcap, tmp_path / "capture.bin")
    shutil.copy(evtx, tmp_path / "Security.bak")
    (tmp_path / "app.log").write_text('{"ts": 1500000000, "msg": "hello"}\n')
    (tmp_path / "README.md").write_text("# notes\n")
    assert kind_of(tmp_path / "capture.bin") == CAPTURE
    assert kind_of(tmp_path / "Security.bak") == "evtx"
    assert kind_of(tmp_path / "app.log") == "jsonl"
    assert kind_of(tmp_path / "README.md") is None

    found = discover([tmp_path])
    assert {i.path.name: i.kind for i in found.inputs} == {
        "capture.bin": CAPTURE,
        "Security.bak": "evtx",
        "app.log": "jsonl",
    }
    assert [p.name for p in found.skipped] == ["README.md"]
    assert found.errors == []


def test_gzip_is_looked_inside(data_dir: Path, tmp_path: Path) -> None:
    pcap = data_dir / "zeek-btest/Traces/ssh/sshguess.pcap"
    with gzip.open(tmp_path / "trace.gz", "wb") as g:
        g.write(pcap.read_bytes())
    with gzip.open(tmp_path / "app.1.gz", "wb") as g:
        g.write(b'{"@timestamp": "2024-01-01T00:00:00Z", "event": "x"}\n')
    assert kind_of(tmp_path / "trace.gz") == CAPTURE
    assert kind_of(tmp_path / "app.1.gz") == "jsonl"


def test_named_unknown_file_is_an_error_but_a_broken_capture_goes_to_its_reader(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("plain words\n")
    (tmp_path / "empty.pcap").write_bytes(b"")
    found = discover([tmp_path / "notes.txt", tmp_path / "empty.pcap", tmp_path / "absent"])
    assert [i.kind for i in found.inputs] == [CAPTURE]  # the pcap reader names what is wrong
    assert len(found.errors) == 2
    assert "notes.txt: not a capture or a log format" in found.errors[0]
    assert "absent: no such file" in found.errors[1]
