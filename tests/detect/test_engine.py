"""The engine isolates a failing detector, suppresses repeats like Zeek's notice framework, runs
light detectors beside heavy ones (never two heavy ones at once) and shares findings within a run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.detect import base
from mamori.detect.base import empty_alerts
from mamori.detect.engine import PROVENANCE, held, held_frames, lake_frames, run_detectors, suppress
from support.golden import capture_frames


def _alert(key: str, minute: int, count: int = 1) -> dict[str, object]:
    t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    return {
        "ts": t, "detector": "d", "techniques": ["T1046"], "severity": "medium", "confidence": 0.5,
        "summary": "s", "src": "10.0.0.1", "dst": None, "first_seen": t, "last_seen": t + timedelta(minutes=1),
        "count": count, "evidence_table": "conn", "evidence": [f"C{minute}"], "key": key,
    }  # fmt: skip


def test_repeats_within_the_interval_merge_and_later_ones_do_not() -> None:
    df = pl.DataFrame([_alert("k", 0, 2), _alert("k", 30, 3), _alert("k", 90, 1), _alert("j", 0, 5)],
                      schema=empty_alerts().schema)  # fmt: skip
    out = suppress(df, timedelta(hours=1))
    k = out.filter(pl.col("key") == "k").sort("first_seen")
    assert k["count"].to_list() == [5, 1]
    assert k["evidence"].to_list()[0] == ["C0", "C30"]
    assert k["summary"].to_list() == ["s (+1 later detection(s) within 1 h)", "s"]
    assert out.filter(pl.col("key") == "j")["count"].to_list() == [5]


def test_a_failing_detector_is_reported_and_the_others_still_run(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mamori.detect import base

    dets = base.registered()
    broken = base.Detector("broken.one", ("conn",), ("orig_h",), ("T0000",), base.Params,
                           lambda conn, p: conn.select(pl.col("no_such_column")), "always fails")  # fmt: skip
    monkeypatch.setattr(base, "registered", lambda: {**dets, "broken.one": broken})
    monkeypatch.setattr("mamori.detect.engine.registered", lambda: {**dets, "broken.one": broken})
    from mamori.schema import TABLES, schema_of

    frames = {t: pl.from_arrow(schema_of(t).empty_table()).lazy() for t in TABLES}
    run = run_detectors(frames)
    assert "broken.one" in run.failed
    assert run.alerts.height == 0


def _fake(det_id: str, heavy: bool, body: Callable[[], None]) -> base.Detector:
    def fn(conn: pl.LazyFrame, p: base.Params) -> pl.LazyFrame:
        body()
        return empty_alerts().lazy()

    return base.Detector(det_id, ("conn",), ("orig_h",), ("T0000",), base.Params, fn, "", {}, heavy)


def test_two_lanes_run_a_light_detector_beside_a_heavy_one_but_never_two_heavy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The heavy lane's detector waits until a light one has run while it is running (the lanes
    overlap; one after another, the wait times out and the test fails); two heavy ones never
    overlap."""
    lock = threading.Lock()
    active = {"heavy": 0, "max_heavy": 0}
    heavy_started, light_ran = threading.Event(), threading.Event()

    def heavy() -> None:
        with lock:
            active["heavy"] += 1
            active["max_heavy"] = max(active["max_heavy"], active["heavy"])
        heavy_started.set()
        light_ran.wait(5)
        time.sleep(0.02)
        with lock:
            active["heavy"] -= 1

    def light() -> None:
        if heavy_started.wait(5):
            with lock:
                if active["heavy"]:
                    light_ran.set()

    dets = {f"h{i}": _fake(f"h{i}", True, heavy) for i in range(3)}
    dets |= {f"l{i}": _fake(f"l{i}", False, light) for i in range(3)}
    monkeypatch.setattr("mamori.detect.engine.registered", lambda: dets)
    run = run_detectors({"conn": pl.LazyFrame(schema={"orig_h": pl.String})}, lanes=2)
    assert run.failed == {}
    assert light_ran.is_set(), "no light detector ran while a heavy one was running"
    assert active["max_heavy"] == 1


def test_two_lanes_and_one_lane_find_the_same_alerts(data_dir: Path) -> None:
    frames = capture_frames(data_dir / "pcaps-ddos-stopddos/amp.TCP.reflection.SYNACK.pcap")
    one, two = run_detectors(frames, lanes=1), run_detectors(frames, lanes=2)
    assert one.alerts.height > 0 and one.failed == two.failed == {}
    assert one.alerts.equals(two.alerts)


def test_backscatter_and_tcp_reflection_count_once_per_run(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mamori.detect.detectors import backscatter

    calls: list[object] = []
    count = backscatter._count_findings

    def counted(conn: pl.LazyFrame, p: backscatter.BackscatterParams) -> pl.LazyFrame:
        calls.append(p)
        return count(conn, p)

    monkeypatch.setattr(backscatter, "_count_findings", counted)
    frames = capture_frames(data_dir / "pcaps-ddos-stopddos/amp.TCP.reflection.SYNACK.pcap")
    both = ["ddos.backscatter", "ddos.tcp_reflection"]
    together = run_detectors(frames, only=both)
    assert len(calls) == 1
    alone = [run_detectors(frames, only=[d]).alerts for d in both]
    assert len(calls) == 3
    assert together.alerts.equals(pl.concat(alone).sort("first_seen", "detector", "key"))
    assert together.alerts["detector"].to_list() == ["ddos.tcp_reflection"]
    # Other parameters for one of them: its findings are its own.
    other = {"ddos.backscatter": backscatter.BackscatterParams(min_sources=11)}
    run_detectors(frames, params=other, only=both)
    assert len(calls) == 5


def test_an_alone_detector_runs_with_nothing_beside_it_and_tasks_ride_the_light_lane(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock = threading.Lock()
    running: list[str] = []
    seen_beside_alone: list[list[str]] = []

    def body(name: str) -> Callable[[], None]:
        def run() -> None:
            with lock:
                running.append(name)
                if name.startswith("a"):
                    seen_beside_alone.append([r for r in running if r != name])
            time.sleep(0.03)
            with lock:
                running.remove(name)
                if name.startswith("a"):
                    seen_beside_alone.append([r for r in running if r != name])

        return run

    def fake(det_id: str, heavy: bool, alone: bool) -> base.Detector:
        d = _fake(det_id, heavy, body(det_id))
        return base.Detector(*[getattr(d, f) for f in ("id", "reads", "key", "attack", "params",
                                                         "fn", "doc", "derive")], heavy, alone)  # fmt: skip

    dets = {"l0": fake("l0", False, False), "a0": fake("a0", True, True)}
    dets |= {"h0": fake("h0", True, False), "l1": fake("l1", False, False)}
    monkeypatch.setattr("mamori.detect.engine.registered", lambda: dets)
    run = run_detectors(
        {"conn": pl.LazyFrame(schema={"orig_h": pl.String})},
        lanes=2,
        beside={"answer": lambda: 42},
    )
    assert run.failed == {} and run.beside == {"answer": 42}
    assert seen_beside_alone == [[], []]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["tcp", "udp", "icmp", None]),
            st.text(max_size=20) | st.none(),
            st.integers(0, 2**64 - 1) | st.none(),
            st.integers(0, 2**32 - 1),
        ),
        max_size=60,
    )
)
def test_a_held_frame_gives_back_every_column_exactly(rows: list[tuple]) -> None:  # type: ignore[type-arg]
    frame = pl.DataFrame(
        rows,
        schema={"proto": pl.String, "text": pl.String, "big": pl.UInt64, "small": pl.UInt64},
        orient="row",
    )
    back = held(frame.lazy())
    assert back.collect_schema() == frame.schema
    assert back.collect().equals(frame)
    assert (
        back.filter(pl.col("proto") == "tcp")
        .select("text", "big")
        .collect()
        .equals(frame.filter(pl.col("proto") == "tcp").select("text", "big"))
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(0, 2**64 - 1) | st.none(), min_size=1, max_size=20),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_count_maxima_come_from_the_footers_or_not_at_all(
    groups: list[list[int | None]], stats: bool
) -> None:
    """The maxima read from row-group statistics are the columns' true maxima (all-null row
    groups, values past 2**63 included); without statistics they are not guessed."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mamori.detect.engine import _maxima

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part.parquet"
        schema = pa.schema([("n", pa.uint64()), ("t", pa.string())])
        with pq.ParquetWriter(path, schema, write_statistics=stats) as writer:
            for values in groups:
                table = pa.table({"n": pa.array(values, pa.uint64()), "t": ["x"] * len(values)})
                writer.write_table(table, row_group_size=len(values))
        tops = _maxima([path], {"n"})
    true = max((v for g in groups for v in g if v is not None), default=0)
    if stats:
        assert tops == {"n": true}
    else:
        assert tops is None or (tops == {"n": 0} and true == 0)


def _lake_of(capture: Path, lake: Path) -> None:
    from mamori.lake.writer import LakeWriter

    with LakeWriter(lake) as writer:
        for table, frame in capture_frames(capture).items():
            data = frame.collect()
            if data.height:
                writer.write(table, data.to_arrow())


def test_detection_over_the_held_conn_table_is_detection_over_the_lake(
    data_dir: Path, tmp_path: Path
) -> None:
    _lake_of(data_dir / "pcaps-ddos-stopddos/amp.TCP.reflection.SYNACK.pcap", tmp_path)
    tables = sorted({t for d in base.registered().values() for t in d.reads} | {"conn"})
    from_lake = run_detectors(lake_frames(tmp_path, tables))
    from_memory = held_frames(tmp_path, tables)
    assert from_memory["conn"].collect_schema().names() == [
        n
        for n in lake_frames(tmp_path, ["conn"])["conn"].collect_schema().names()
        if n not in PROVENANCE
    ]
    held_run = run_detectors(from_memory)
    assert from_lake.alerts.height > 0 and from_lake.failed == held_run.failed == {}
    assert held_run.alerts.equals(from_lake.alerts)


def test_a_table_above_the_row_limit_is_left_in_the_lake(data_dir: Path, tmp_path: Path) -> None:
    _lake_of(data_dir / "pcaps-ddos-stopddos/amp.TCP.reflection.SYNACK.pcap", tmp_path)
    rows = lake_frames(tmp_path, ["conn"])["conn"].select(pl.len()).collect().item()
    over = held_frames(tmp_path, ["conn"], max_rows=rows - 1)["conn"]
    within = held_frames(tmp_path, ["conn"], max_rows=rows)["conn"]
    assert "source" in over.collect_schema().names()  # the lake's own frame, provenance and all
    assert "source" not in within.collect_schema().names()
    assert within.collect().equals(over.drop(*PROVENANCE).collect())
