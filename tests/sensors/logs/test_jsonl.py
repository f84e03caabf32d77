"""The generic JSON-lines sensor: every good line kept, the bad ones named by line number."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from mamori.sensors.logingest import ingest_log
from mamori.sensors.registry import registered_sensors


def _read(path: Path) -> tuple[pl.DataFrame, object]:
    got = []
    stats = ingest_log(path, registered_sensors()["jsonl"], lambda t, b: got.append(b))
    frame = pl.concat([pl.from_arrow(b) for b in got]) if got else pl.DataFrame()
    return frame, stats


def test_times_in_every_usual_shape_and_bad_lines_skipped(tmp_path: Path) -> None:
    lines = [
        {"@timestamp": "2024-03-01T10:00:00.250Z", "host": "web1"},
        {"timestamp": "2024-03-01T11:00:00+0100"},
        {"ts": 1709290800.5},
        {"time": 1709290800123},  # milliseconds
        {"eventTime": "2024-03-01 10:00:00"},
    ]
    text = "\n".join(json.dumps(o) for o in lines[:2]) + "\nnot json at all\n\n"
    text += "\n".join(json.dumps(o) for o in lines[2:]) + '\n{"no_time": 1}\n'
    path = tmp_path / "app.jsonl"
    path.write_text(text)
    frame, stats = _read(path)
    assert frame["record"].to_list() == [1, 2, 5, 6, 7]
    assert frame["ts"].to_list() == [
        datetime(2024, 3, 1, 10, 0, 0, 250000, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC),
        datetime(2024, 3, 1, 11, 0, 0, 500000, tzinfo=UTC),
        datetime(2024, 3, 1, 11, 0, 0, 123000, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC),
    ]
    assert frame["host"].to_list()[0] == "web1"
    assert [json.loads(d) for d in frame["data"]] == lines
    assert stats.skipped == 2
    assert stats.warnings == [
        f"{path}: record 3: not a JSON object",
        f"{path}: record 8: no timestamp it could read",
    ]


def test_truncated_gzip_keeps_the_lines_before_the_cut(tmp_path: Path) -> None:
    body = "".join(json.dumps({"ts": 1700000000 + i, "n": i}) + "\n" for i in range(20_000))
    whole = gzip.compress(body.encode())
    path = tmp_path / "app.1.gz"
    path.write_bytes(whole[: len(whole) // 2])
    frame, stats = _read(path)
    assert stats.problem is not None and str(path) in stats.problem
    assert 0 < frame.height < 20_000
    assert frame["record"].to_list() == list(range(1, frame.height + 1))
    assert [json.loads(d)["n"] for d in frame["data"]] == list(range(frame.height))


@given(
    st.lists(
        st.one_of(
            st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=8), max_size=3),
            st.text(max_size=30),
        ),
        max_size=30,
    )
)
def test_any_mix_of_lines_loses_no_good_object(items: list[object]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mix.jsonl"
        lines = []
        for i, item in enumerate(items):
            if isinstance(item, dict):
                item = {**item, "ts": 1700000000 + i}
                lines.append(json.dumps(item))
            else:
                lines.append(item.replace("\n", " ").replace("\r", " "))
        path.write_text("\n".join(lines) + "\n")
        frame, _ = _read(path)
        good = [i + 1 for i, it in enumerate(items) if isinstance(it, dict)]
        got = frame["record"].to_list() if frame.height else []
        assert got == good


def test_lines_longer_than_a_chunk_are_whole_and_a_giant_line_stops_cleanly(
    tmp_path: Path, monkeypatch: object
) -> None:
    from mamori.sensors.logs import _lines

    path = tmp_path / "long.jsonl"
    body = [json.dumps({"ts": 1700000000 + i, "pad": "x" * (3000 * (i % 3))}) for i in range(40)]
    path.write_text("\n".join(body) + "\n")
    got = [
        (n, line)
        for numbers, lines in _lines.line_batches(path, chunk_bytes=1024)
        for n, line in zip(numbers.to_pylist(), lines.to_pylist(), strict=True)
    ]
    assert got == list(enumerate(body, 1))

    monkeypatch.setattr(_lines, "MAX_LINE", 10_000)  # type: ignore[attr-defined]
    monkeypatch.setattr(_lines, "CHUNK_BYTES", 1024)  # type: ignore[attr-defined]
    giant = tmp_path / "giant.jsonl"
    giant.write_text(body[0] + "\n" + json.dumps({"ts": 1, "pad": "y" * 50_000}) + "\n")
    frame, stats = _read(giant)
    assert frame["record"].to_list() == [1]
    assert stats.problem == f"{giant}: record 2: a line longer than 10,000 bytes"
