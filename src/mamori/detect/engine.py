"""The local engine: every registered detector over the lake, on every core, repeats suppressed.

Detectors build lazy Polars plans; the engine collects them two at a time, on two threads (Polars
releases the GIL while it collects), because most plans keep about one core busy: their filters,
group-bys and sorts over one table do not spread well, so one detector at a time left the second
core idle. Not all together (``pl.collect_all``): then every detector's intermediate frames over
the whole conn table are alive at once, and a day of a busy site's connections peaked at four
times ingest's memory (2.3 GB against 0.56 on the 5 M-packet workload). Two lanes instead: one
runs the *heavy* detectors (``Detector.heavy``: their working set is the whole table) one after
another, then helps with the rest; the other runs only the light ones, so no two heavy ones are
ever alive together. The heaviest (``Detector.alone``: a flood's sets of sources, TRW's coded
and sorted walks) run first, with nothing beside them, so no pair of lanes holds more than they
do alone. Work that is not a detector but reads the same lake (the report's traffic charts) can
ride on the light lane (``beside``). Results are gathered in registry order whatever finishes
first. Detectors that report readings of the same counts share them
(:func:`mamori.detect.windows.shared`, scoped to one run). A detector that raises is logged and
counted and the run continues without it (one bad detector must not blind the patrol).
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from mamori.detect.base import ALERT_COLUMNS, Detector, Params, empty_alerts, registered
from mamori.detect.windows import sharing
from mamori.schema import schema_of

log = logging.getLogger(__name__)

SUPPRESS_FOR = timedelta(hours=1)  # Zeek's Notice::default_suppression_interval


def lake_frames(lake: Path, tables: Iterable[str]) -> dict[str, pl.LazyFrame]:
    """Each table of the lake as a LazyFrame (an empty frame of the schema when absent)."""
    frames: dict[str, pl.LazyFrame] = {}
    for table in tables:
        files = _files(lake, table)
        if files:
            frames[table] = pl.scan_parquet(files, missing_columns="insert", extra_columns="ignore")
        else:
            frames[table] = pl.from_arrow(schema_of(table).empty_table()).lazy()  # type: ignore[union-attr]
    return frames


def _files(lake: Path, table: str) -> list[Path]:
    return sorted((Path(lake) / table).glob("date=*/*.parquet"))


# Where a record came from (the capture and its packet records): what a case or an evidence
# package reads from the lake itself, never a detector (detectors name records by uid).
PROVENANCE = ("source", "first_record", "last_record")


# Rows of a table held in memory at most (about 220 bytes a connection: ~1 GB). A larger table
# (a busy site's week) is read from the lake by each detector, as before: slower, but its memory
# stays that of the largest detector, not the table's.
HOLD_ROWS = 5_000_000


def held_frames(
    lake: Path,
    tables: Iterable[str],
    hold: Iterable[str] = ("conn",),
    max_rows: int = HOLD_ROWS,
) -> dict[str, pl.LazyFrame]:
    """:func:`lake_frames`, with the tables in ``hold`` of at most ``max_rows`` rows read once
    into memory (less their :data:`PROVENANCE` columns) and handed out as LazyFrames over that
    one frame.

    Every detector over the conn table reads it: from the lake, each would decode its columns
    again (and :func:`mamori.detect.windows.at_least` or a sparse ``threshold`` twice), about a
    third of what detection cost on the ingest workload. Held, the table is decoded once and a
    detector's plan starts from memory. Held a little narrower (:func:`held`), every column a
    detector reads has the lake's type; the provenance columns, which no detector reads, are
    left out. The price is memory: the workload's 3.37 M connections take ~750 MB held
    (patrol's peak rose from ~0.9 to 1.6-1.7 GB)."""
    chosen = list(tables)
    frames = lake_frames(lake, chosen)
    keep = set(hold)
    for table in chosen:
        if table in keep and frames[table].select(pl.len()).collect().item() <= max_rows:
            schema = frames[table].collect_schema()
            names = [n for n in schema.names() if n not in PROVENANCE]
            counts = {n for n in names if schema[n] == pl.UInt64}
            tops = _maxima(_files(lake, table), counts)
            frames[table] = held(frames[table].select(names), tops)
    return frames


def _maxima(files: list[Path], names: set[str]) -> dict[str, int] | None:
    """The largest value of each of the integer columns ``names`` from the files' row-group
    statistics (the lake writer keeps them for every column but text), or None if a row group
    with values lacks them: a few footers, where a pass over the counts cost a fifth of
    holding the workload's conn table. A column a file lacks is read as nulls: nothing to add."""
    tops = dict.fromkeys(names, 0)
    for path in files:
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                column = group.column(c)
                name = column.path_in_schema
                if name not in tops:
                    continue
                stats = column.statistics
                if (
                    stats is not None
                    and stats.has_null_count
                    and stats.null_count == group.num_rows
                ):
                    continue  # only nulls
                if stats is None or not stats.has_min_max or not isinstance(stats.max, int):
                    return None
                tops[name] = max(tops[name], stats.max)
    return tops


def held(frame: pl.LazyFrame, tops: Mapping[str, int] | None = None) -> pl.LazyFrame:
    """``frame`` collected, with unsigned counts that fit in 32 bits held as such, as a
    LazyFrame that gives every column back in its own type (a plan widens only the columns it
    reads, a morsel at a time). The counts' maxima are read first, so no count is ever cut.

    Text stays text: held as categories, short texts (protocol, history, state) would take 4
    bytes a row instead of 16, but every detector reading them would pay for turning them back
    into text (measured: 0.85 CPU-s more over the workload's detectors, for 30 MB less peak).

    ``tops``: the columns' maxima if known already (:func:`_maxima`); else they are read."""
    schema = frame.collect_schema()
    counts = [n for n, t in schema.items() if t == pl.UInt64]
    if tops is None or any(n not in tops for n in counts):
        got = frame.select(pl.col(counts).max()).collect() if counts else None
        tops = {n: got[n][0] or 0 for n in counts} if got is not None else {}
    fits = [n for n in counts if tops[n] < 1 << 32]
    data = frame.with_columns(pl.col(n).cast(pl.UInt32) for n in fits).collect()
    return (
        data.lazy().with_columns(pl.col(n).cast(pl.UInt64) for n in fits) if fits else data.lazy()
    )


@dataclass
class DetectionRun:
    alerts: pl.DataFrame
    failed: dict[str, str] = field(default_factory=dict)  # detector id -> error
    beside: dict[str, object] = field(default_factory=dict)  # name -> what the task returned


def run_detectors(
    frames: Mapping[str, pl.LazyFrame],
    params: Mapping[str, Params] | None = None,
    only: Iterable[str] | None = None,
    suppress_for: timedelta = SUPPRESS_FOR,
    lanes: int | None = None,
    beside: Mapping[str, Callable[[], object]] | None = None,
) -> DetectionRun:
    """Every chosen detector's alerts over ``frames``, suppressed. ``lanes``: detectors collected
    at once (default 2 on a machine with several cores, else 1; at most 2, see the module).
    ``beside``: light tasks run on the light lane after its detectors (their results in
    ``DetectionRun.beside``; an exception in one is raised here, after the detectors)."""
    wanted = None if only is None else set(only)
    chosen = [d for d in registered().values() if wanted is None or d.id in wanted]
    lanes = min(2, lanes or (2 if (os.cpu_count() or 1) > 1 else 1))
    results: dict[str, pl.DataFrame] = {}
    failed: dict[str, str] = {}

    def one(d: Detector) -> None:
        try:
            plan = d.run(frames, (params or {}).get(d.id)).select(ALERT_COLUMNS)
        except Exception as exc:  # a broken detector is reported, never fatal
            log.exception("detector %s failed to plan", d.id)
            failed[d.id] = f"{type(exc).__name__}: {exc}"
            return
        try:
            results[d.id] = plan.collect()
        except Exception as exc:
            log.exception("detector %s failed", d.id)
            failed[d.id] = f"{type(exc).__name__}: {exc}"

    done: dict[str, object] = {}

    def tasks() -> None:
        for name, task in (beside or {}).items():
            done[name] = task()

    with sharing():
        for d in chosen:
            if d.alone or lanes == 1:
                one(d)
        if lanes == 1:
            tasks()
        else:
            _two_lanes([d for d in chosen if not d.alone], one, tasks)
    base = empty_alerts()
    found = [
        results[d.id].cast(base.schema, strict=False)  # type: ignore[arg-type]
        for d in chosen
        if d.id in results and results[d.id].height
    ]
    alerts = pl.concat([base, *found], how="vertical") if found else base
    return DetectionRun(
        suppress(alerts, suppress_for),
        {d.id: failed[d.id] for d in chosen if d.id in failed},
        done,
    )


def _two_lanes(
    chosen: list[Detector], one: Callable[[Detector], None], then: Callable[[], None]
) -> None:
    """Heavy detectors one after another on a second thread, which then takes light ones too;
    this thread takes only light ones, then runs ``then``. Both run in the caller's context (its
    sharing scope)."""
    heavy = deque(d for d in chosen if d.heavy)
    light = deque(d for d in chosen if not d.heavy)
    lock = threading.Lock()

    def take(queue: deque[Detector]) -> Detector | None:
        with lock:
            return queue.popleft() if queue else None

    def drain(*queues: deque[Detector]) -> None:
        for queue in queues:
            while (d := take(queue)) is not None:
                one(d)

    errors: list[BaseException] = []

    def heavy_lane() -> None:
        try:
            drain(heavy, light)
        except BaseException as exc:  # pragma: no cover - one() catches what detectors raise
            errors.append(exc)

    ctx = contextvars.copy_context()
    thread = threading.Thread(target=ctx.run, args=(heavy_lane,), name="mamori-detect-heavy")
    thread.start()
    try:
        drain(light)
        then()
    finally:
        thread.join()
    if errors:
        raise errors[0]


def suppress(alerts: pl.DataFrame, window: timedelta) -> pl.DataFrame:
    """Repeats of the same alert key within ``window`` of its first become one alert.

    Like Zeek's notice suppression, an attack that keeps going is one alert per interval, with its
    counts and evidence merged, not one per detection window.
    """
    if alerts.height == 0:
        return alerts
    span_us = (
        pl.col("first_seen") - pl.col("first_seen").min().over("key")
    ).dt.total_microseconds()
    bucket = (span_us // int(window.total_seconds() * 1_000_000)).alias("_b")
    merged = (
        alerts.with_columns(bucket)
        .sort("first_seen")
        .group_by("key", "_b", maintain_order=True)
        .agg(
            pl.col("ts").min(),
            pl.col("detector").first(),
            pl.col("techniques").first(),
            pl.col("severity").first(),
            pl.col("confidence").max(),
            pl.col("summary").first(),
            pl.len().alias("_merged"),
            pl.col("src").first(),
            pl.col("dst").first(),
            pl.col("domains")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .drop_nulls()
            .unique()
            .sort(),
            pl.col("first_seen").min(),
            pl.col("last_seen").max(),
            pl.col("count").sum(),
            pl.col("evidence_table").first(),
            pl.col("evidence")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .unique(maintain_order=True)
            .head(50),
        )
    )
    # The first detection's summary stands for the group; say when it speaks for several.
    merged = merged.with_columns(
        summary=pl.when(pl.col("_merged") > 1)
        .then(
            pl.format(
                "{} (+{} later detection(s) within {})",
                "summary",
                pl.col("_merged") - 1,
                pl.lit(_span(window)),
            )
        )
        .otherwise(pl.col("summary"))
    )
    # Total order (a key has one alert per first_seen after merging): the same alerts come out in
    # the same order whichever detector finished first.
    return merged.select(ALERT_COLUMNS).sort("first_seen", "detector", "key")


def _span(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{window.total_seconds() / 60:g} min"
