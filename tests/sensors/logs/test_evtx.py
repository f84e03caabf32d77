"""The EVTX sensor on real exports: every record, System fields typed, logons into ``auth``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.sensors.logingest import ingest_log
from mamori.sensors.logs import evtx
from mamori.sensors.logs._lines import parse_times
from mamori.sensors.registry import registered_sensors


def _read(path: Path) -> tuple[dict[str, pl.DataFrame], object]:
    got: dict[str, list[pl.DataFrame]] = {}
    stats = ingest_log(
        path,
        registered_sensors()["evtx"],
        lambda t, b: got.setdefault(t, []).append(pl.from_arrow(b)),  # type: ignore[arg-type]
    )
    return {t: pl.concat(fs) for t, fs in got.items()}, stats


def test_log_cleared_event_fields(data_dir: Path) -> None:
    path = data_dir / "evtx-attack-samples/Defense Evasion/DE_1102_security_log_cleared.evtx"
    tables, stats = _read(path)
    ev = tables["winevt"]
    assert stats.error is None and stats.problem is None and stats.skipped == 0
    assert ev["record"].to_list() == list(range(1, ev.height + 1))
    first = ev.row(0, named=True)
    assert first["event_id"] == 1102 and first["channel"] == "Security"
    assert first["provider"] == "Microsoft-Windows-Eventlog"
    assert first["host"] == "PC01.example.corp" and first["record_id"] == 452811
    assert first["ts"].isoformat() == "2019-03-19T23:35:07.524202+00:00"
    # UserData's element is flattened like EventData: the fields the rules name.
    assert json.loads(first["data"])["SubjectUserName"] == "user01"
    assert ev["uid"].n_unique() == ev.height


def test_sigma_sample_matches_its_json_twin(data_dir: Path) -> None:
    """SigmaHQ's regression sample comes with evtx_dump's JSON of the same events."""
    twin = next((data_dir / "sigma/regression_data").rglob("*.json"))
    evtx = twin.with_suffix(".evtx")
    tables, _ = _read(evtx)
    event = json.loads(twin.read_text())["Event"]
    row = tables["winevt"].row(0, named=True)
    assert row["event_id"] == event["System"]["EventID"]
    assert row["channel"] == event["System"]["Channel"]
    data = json.loads(row["data"])
    for key, value in (event.get("EventData") or {}).items():
        if key != "#attributes" and value is not None and not isinstance(value, dict | list):
            assert data[key] == str(value)


def test_logons_become_auth_rows(data_dir: Path) -> None:
    paths = sorted((data_dir / "evtx-attack-samples").rglob("*.evtx"))
    frames = []
    for path in paths:
        tables, _ = _read(path)
        if "auth" in tables:
            frames.append(tables["auth"])
    auth = pl.concat(frames)
    assert set(auth["outcome"]) <= {"success", "failure"}
    assert (auth["source"] == "winevt").all()
    assert auth.filter(pl.col("outcome") == "failure").height > 0
    assert auth["source_uid"].str.starts_with("W").all()


def test_not_an_evtx_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.evtx"
    bad.write_bytes(b"ElfFile\x00" + b"\x00" * 100)
    _, stats = _read(bad)
    assert stats.error is not None and str(bad) in stats.error


@pytest.mark.parametrize("chunks", [3, 8])
def test_truncated_evtx_keeps_records_before_the_cut(
    data_dir: Path, tmp_path: Path, chunks: int
) -> None:
    """Cut inside a 64 KiB chunk: every whole chunk before it is read, in order."""
    src = (
        data_dir / "evtx-attack-samples/AutomatedTestingTools/PanacheSysmon_vs_AtomicRedTeam01.evtx"
    )
    whole, _ = _read(src)
    part = tmp_path / "cut.evtx"
    part.write_bytes(src.read_bytes()[: 4096 + 65536 * chunks + 30_000])
    tables, stats = _read(part)
    got = tables["winevt"]
    assert 0 < got.height < whole["winevt"].height
    assert stats.problem is not None and "truncated" in stats.problem
    # Whatever was read is exactly the start of the whole file's events.
    assert got["record_id"].to_list() == whole["winevt"]["record_id"].to_list()[: got.height]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)).map(
            lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f")
        ),
        min_size=1,
        max_size=20,
    ),
    st.integers(min_value=1, max_value=9),
    st.booleans(),
)
def test_system_time_fast_path_agrees_with_general_parser(
    stamps: list[str], digits: int, odd_one: bool
) -> None:
    """Arrow's cast (every record in evtx's shape) gives what the general parser gives."""
    when = [f"{s[:20]}{s[20:].ljust(9, '7')[:digits]}Z" for s in stamps]
    if odd_one:  # one record in another shape sends the batch through the general parser
        when.append(stamps[0].replace("T", " ") + " UTC")
    got = pl.Series(evtx._times(pa.array(when)))
    general = pl.select(parse_times(pl.lit(pl.Series(when)).str.replace(r" UTC$", ""))).to_series()
    assert got.to_list() == general.to_list()
    assert got.null_count() == 0


def test_records_without_a_readable_time_are_warned_and_skipped(tmp_path: Path) -> None:
    """One unreadable time: that record is reported, the others (any time shape) are kept."""
    from mamori.sensors.registry import ReadContext

    def row(number: int, when: str) -> tuple[object, ...]:
        return (
            number,
            when,
            "h",
            "Security",
            "p",
            4688,
            0,
            0,
            0,
            0,
            None,
            number,
            1,
            2,
            None,
            "{}",
        )

    ctx = ReadContext(tmp_path / "x.evtx", "abc")
    rows = [
        row(1, "2019-03-19T23:35:07.524202Z"),
        row(2, "not a time"),
        row(3, "2019-03-19T23:35:08.7860165Z UTC"),  # the parser's own timestamp, as a fallback
    ]
    tables = dict(evtx._flush(tmp_path / "x.evtx", ctx, rows))
    got = pl.from_arrow(tables["winevt"])
    assert got["record"].to_list() == [1, 3]  # type: ignore[index]
    assert [t.isoformat() for t in got["ts"]] == [  # type: ignore[index]
        "2019-03-19T23:35:07.524202+00:00",
        "2019-03-19T23:35:08.786016+00:00",
    ]
    assert ctx.warned == 1 and ctx.warnings == [(2, "no time it could read")]
    assert "auth" not in tables


def test_odd_values_in_an_event_are_text_or_unset_not_a_failed_file(tmp_path: Path) -> None:
    """A damaged record's System fields: text the parser rendered as a number stays text, and a
    number too large for its column is warned about and unset; the events are all kept."""
    from mamori.sensors.registry import ReadContext

    def event(computer: object, record_id: object, event_id: object) -> dict[str, object]:
        return {
            "System": {
                "TimeCreated": {"#attributes": {"SystemTime": "2019-03-19T23:35:07.524202Z"}},
                "Computer": computer,
                "Channel": "Security",
                "Provider": {"#attributes": {"Name": 4}},
                "EventID": event_id,
                "EventRecordID": record_id,
            }
        }

    rows = [
        evtx._row(1, "", event("dc01", 7, 4688)),
        evtx._row(2, "", event(12345, 2**64 - 77, 4688)),
        evtx._row(3, "", event(["a", "b"], 9, 2**40)),
        evtx._row(4, "", {"System": "not an element"}),
    ]
    ctx = ReadContext(tmp_path / "x.evtx", "abc")
    tables = dict(evtx._flush(tmp_path / "x.evtx", ctx, rows))
    got = pl.from_arrow(tables["winevt"])
    assert got["record"].to_list() == [1, 2, 3]  # type: ignore[index]
    assert got["host"].to_list() == ["dc01", "12345", "a\nb"]  # type: ignore[index]
    assert got["provider"].to_list() == ["4", "4", "4"]  # type: ignore[index]
    assert got["record_id"].to_list() == [7, None, 9]  # type: ignore[index]
    assert got["event_id"].to_list() == [4688, 4688, None]  # type: ignore[index]
    assert ctx.warnings == [  # column by column
        (3, f"field event_id: {2**40} is out of range"),
        (2, f"field record_id: {2**64 - 77} is out of range"),
        (4, "no time it could read"),
    ]
