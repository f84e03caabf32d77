"""Golden-case and capture loading shared by the detector tests: frames of every lake table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl

from mamori.detect.base import Params, registered
from mamori.flows.pipeline import tables_of
from mamori.schema import TABLES, schema_of

CASES = Path(__file__).resolve().parent.parent / "cases"
COLUMNS = ["src", "dst", "count", "severity", "techniques", "summary", "evidence"]


def empty_frames() -> dict[str, pl.LazyFrame]:
    return {t: pl.from_arrow(schema_of(t).empty_table()).lazy() for t in TABLES}  # type: ignore[union-attr]


def typed(table: str, rows: list[dict]) -> pl.DataFrame:  # type: ignore[type-arg]
    """Rows of ``table`` (ts as ISO text) as a frame of the table's schema."""
    empty: pl.DataFrame = pl.from_arrow(schema_of(table).empty_table())  # type: ignore[assignment]
    if not rows:
        return empty
    schema = empty.schema
    df = pl.DataFrame(rows, infer_schema_length=None)
    df = df.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
    df = df.cast({k: v for k, v in schema.items() if k in df.columns})  # type: ignore[arg-type]
    return pl.concat([empty, df], how="diagonal")  # every column of the table, absent ones null


def case_frames(name: str, table: str) -> dict[str, pl.LazyFrame]:
    """A case's input: rows of ``table``, or of the table each row names in its ``table`` key."""
    by: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for line in (CASES / name / "input.jsonl").read_text().splitlines():
        row = json.loads(line)
        by.setdefault(row.pop("table", table), []).append(row)
    frames = empty_frames()
    frames.update({t: typed(t, rows).lazy() for t, rows in by.items()})
    return frames


def expected(name: str) -> list[dict]:  # type: ignore[type-arg]
    return json.loads((CASES / name / "expected.json").read_text())


def capture_frames(capture: Path) -> dict[str, pl.LazyFrame]:
    tables, stats = tables_of([capture])
    assert stats[0].error is None
    frames = empty_frames()
    frames.update({k: pl.from_arrow(v).lazy() for k, v in tables.items()})  # type: ignore[misc]
    return frames


def detect(det: str, frames: dict[str, pl.LazyFrame], params: Params | None = None) -> pl.DataFrame:
    """One detector's alerts without engine suppression, in a canonical order."""
    full = empty_frames() | frames
    return registered()[det].run(full, params).collect().sort("key", "first_seen")


def assert_key_sufficient(
    run: Callable[[pl.DataFrame], pl.DataFrame], rows: pl.DataFrame, key: str
) -> None:
    """The detector contract's partition property: running on each key value's rows alone gives
    exactly the alerts of the whole (what lets a Spark engine run it per key)."""
    parts = [run(g) for g in rows.partition_by(key)]
    assert pl.concat(parts).sort("key", "first_seen").equals(run(rows).sort("key", "first_seen"))


def golden_alerts(name: str, table: str, det: str) -> list[dict]:  # type: ignore[type-arg]
    """A golden case's alerts from one detector through the engine, in the expected file's order
    and columns (compare with :func:`expected`)."""
    from mamori.detect.engine import run_detectors

    got = run_detectors(case_frames(name, table), only=[det]).alerts
    return got.sort("src", "dst", nulls_last=True).select(COLUMNS).to_dicts()


def assert_case_partitions(det: str, name: str, table: str, key: str = "orig_h") -> None:
    """:func:`assert_key_sufficient` on a golden case's rows of one table."""
    rows = case_frames(name, table)[table].collect()
    assert_key_sufficient(lambda r: detect(det, {table: r.lazy()}), rows, key)
