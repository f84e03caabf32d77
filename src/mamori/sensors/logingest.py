"""Drive one log file through its sensor into the lake, keeping what was good when it breaks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from mamori.schema import schema_of
from mamori.sensors.registry import LogFormatError, LogSensor, ReadContext, content_seed

log = logging.getLogger(__name__)

Sink = Callable[[str, pa.Table], None]


@dataclass
class LogStats:
    """One log file's outcome, shaped like a capture's so reports list both alike."""

    path: str
    sensor: str
    bytes: int = 0
    records: int = 0  # log records read (rows of every table but the derived ``auth``)
    rows: dict[str, int] = field(default_factory=dict)
    problem: str | None = None  # reading stopped early: "FILE: record N: reason"
    error: str | None = None  # nothing could be read
    skipped: int = 0  # records warned about and skipped
    warnings: list[str] = field(default_factory=list)
    packets: int = 0  # logs have none; kept so totals over captures and logs add up


def known_zone(name: str) -> bool:
    """Whether Polars (which carries its own zone database) knows ``name``."""
    import polars as pl  # here: ingesting only captures never loads Polars

    try:
        pl.Series([0], dtype=pl.Datetime("us")).dt.replace_time_zone(name)
    except pl.exceptions.PolarsError:
        return False
    return True


def ingest_log(
    path: Path,
    sensor: LogSensor,
    sink: Sink,
    *,
    year: int | None = None,
    timezone: str = "UTC",
    progress: Callable[[int], None] | None = None,
) -> LogStats:
    """Every table batch the sensor yields goes to ``sink``, cast to the lake's schema."""
    stats = LogStats(str(path), sensor.name)
    if not known_zone(timezone):
        stats.error = f"{path}: unknown time zone {timezone!r} (log_timezone: an IANA name)"
        return stats
    try:
        stats.bytes = path.stat().st_size
        ctx = ReadContext(path=path, seed=content_seed(path), year=year, timezone=timezone)
    except OSError as exc:
        stats.error = f"{path}: cannot read: {exc.strerror or exc}"
        return stats
    try:
        # The lake records the absolute path: evidence packages find the original file from it.
        for table, batch in sensor.read(path.resolve(), ctx):
            if batch.num_rows == 0:
                continue
            sink(table, batch.select(schema_of(table).names).cast(schema_of(table)))
            stats.rows[table] = stats.rows.get(table, 0) + batch.num_rows
            if progress is not None:
                progress(sum(n for t, n in stats.rows.items() if t != "auth"))
    except LogFormatError as exc:
        stats.problem = f"{path}: record {exc.record}: {exc.reason}"
    except (OSError, EOFError) as exc:
        # A truncated gzip or an unreadable file part way: what was read stays.
        stats.problem = f"{path}: {type(exc).__name__}: {exc}"
    except Exception as exc:  # a sensor bug must not take the patrol down, nor hide
        log.debug("log sensor %s failed on %s", sensor.name, path, exc_info=True)
        stats.problem = f"{path}: {sensor.name} sensor failed: {type(exc).__name__}: {exc}"
    # Records read: every row but ``auth``'s, which restate records of another table.
    stats.records = sum(n for t, n in stats.rows.items() if t != "auth")
    stats.skipped = ctx.warned
    stats.warnings = [f"{path}: record {n}: {why}" for n, why in ctx.warnings]
    if stats.problem and not stats.rows and not stats.records:
        stats.error, stats.problem = stats.problem, None
    return stats
