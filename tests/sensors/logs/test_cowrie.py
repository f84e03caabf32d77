"""The Cowrie sensor on the shared honeypot logs: every event, its fields, its session."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from mamori.sensors.inputs import kind_of
from mamori.sensors.logingest import ingest_log
from mamori.sensors.registry import registered_sensors


def _read(path: Path) -> tuple[pl.DataFrame, object]:
    got: list[pl.DataFrame] = []
    stats = ingest_log(
        path,
        registered_sensors()["cowrie"],
        lambda t, b: got.append(pl.from_arrow(b)),  # type: ignore[arg-type]
    )
    return pl.concat(got), stats


def test_every_event_of_the_shared_logs(data_dir: Path) -> None:
    files = sorted((data_dir / "logs/cowrie-honeypot").glob("cowrie.json.*"))
    assert files and all(kind_of(f) == "cowrie" for f in files)  # not the generic JSON lines
    for path in files:
        frame, stats = _read(path)
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        assert stats.skipped == 0 and stats.problem is None
        assert frame.height == len(lines)
        assert frame["event"].to_list() == [x["eventid"] for x in lines]
        assert frame["src_ip"].to_list() == [x.get("src_ip") for x in lines]
        assert frame["username"].to_list() == [x.get("username") for x in lines]
        assert frame["input"].to_list() == [x.get("input") for x in lines]
        assert frame["session"].to_list() == [x.get("session") for x in lines]
        ports = [x.get("src_port") for x in lines]
        assert frame["src_port"].to_list() == ports
        assert set(frame["protocol"].drop_nulls()) == {"ssh"}


def test_odd_types_and_broken_lines(tmp_path: Path) -> None:
    lines = [
        {"eventid": "cowrie.session.connect", "timestamp": "2024-05-01T10:00:00.5Z",
         "src_ip": "198.51.100.7", "src_port": "2222", "session": "s1",
         "system": "CowrieTelnetTransport,1,198.51.100.7"},
        {"eventid": "cowrie.command.input", "timestamp": "2024-05-01T10:00:01Z",
         "src_ip": "198.51.100.7", "session": "s1", "input": ["wget", "http://x/y"]},
        {"eventid": "cowrie.session.file_download", "timestamp": "2024-05-01T10:00:02Z",
         "src_ip": "198.51.100.7", "session": "s1", "url": "http://evil.example/bot.sh",
         "shasum": "ab" * 32},
    ]  # fmt: skip
    path = tmp_path / "cowrie.json"
    path.write_text(
        json.dumps(lines[0]) + "\n" + json.dumps(lines[1]) + "\n{broken\n" + json.dumps(lines[2])
    )
    frame, stats = _read(path)
    assert frame["record"].to_list() == [1, 2, 4]
    assert stats.warnings == [f"{path}: record 3: not a Cowrie JSON event"]
    assert frame["protocol"][0] == "telnet" and frame["src_port"][0] == 2222
    assert json.loads(frame["input"][1]) == ["wget", "http://x/y"]  # a list kept as its JSON text
    assert frame["url"][2] == "http://evil.example/bot.sh" and frame["shasum"][2] == "ab" * 32
