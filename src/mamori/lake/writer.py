"""Write tables into the lake as ``<root>/<table>/date=YYYY-MM-DD/part-*.parquet``.

Rows are buffered per table and flushed in large row groups: many small Parquet files would make
every later query slower. Partitioning by the record's own date (UTC) keeps a day's hunt cheap.

Each (table, day) keeps one file open while the writer runs: a flush adds a row group to it, and
``close`` finishes every file. A file is written under a name that no lake reader globs for
(``*.parquet.partial``) and renamed to its ``part-*.parquet`` name once its footer is written, so
a crashed ingest leaves no half-written Parquet file in the lake.
"""

from __future__ import annotations

import uuid
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mamori.schema import schema_of

FLUSH_ROWS = 50_000  # bounds the writer's memory (per process); still large row groups
# Parquet's codec. snappy (Parquet's, Spark's and pyarrow's default) against zstd level 1 on the
# workload's conn rows, one ingest shard: 0.40 against 0.54-0.56 CPU-s to write, 63.6 against
# 44.6 MB. Arrow's zstd also builds a fresh compression context per page (ZSTD_compress): with
# every table's small pages, the whole two-process ingest of the workload took 4.72 s with
# snappy against 5.09 s with zstd (5 alternating rounds, user CPU 8.62 against 9.20 s). zstd
# stays a setting (``lake_compression``) for a lake kept long, where size counts more.
COMPRESSION = "snappy"
CODECS = ("snappy", "zstd", "lz4", "gzip", "brotli", "none")
# A table that fills slowly (http, ssl, ftp ...) would hold every batch's few rows as its own small
# Arrow buffers until the capture ends, pinning heap pages between short-lived allocations: the
# heap grew by 40 MB over the 1.4 GB workload in one process, 20 MB with compaction.
COMPACT_PARTS = 32
_DAY_US = 86_400_000_000
_EPOCH = np.datetime64("1970-01-01", "D")


# Text columns whose values are (nearly) unique per row: a dictionary page only costs here. uid
# is unique; addresses exceed the 1 MB dictionary page within a flush on busy links, and Arrow
# then hashes every value for nothing and falls back to plain pages (and zstd compresses plain
# address pages smaller than the dictionary's anyway: conn's orig_h 16.0 MB plain, 19.8 MB
# dictionary on the workload).
_PLAIN_TEXT = frozenset({"uid", "orig_h", "resp_h"})
# uid's values all have one length: DELTA_LENGTH_BYTE_ARRAY stores the lengths as one delta run
# and hands zstd the characters alone, which it compresses faster than plain's interleaved
# lengths (0.24 CPU-s against 0.31 for the workload's uids, the same size).
_LENGTH_DELTA_TEXT = ("uid",)
# Files kept open at once per writer: a capture spanning more days than this closes the file it
# added to longest ago (and starts a new one for that day if it comes back).
MAX_OPEN = 64
PARTIAL = ".partial"  # suffix of a file still being written
# Values handed to each column encoder at a time. Arrow's default (1024) pays its per-batch work
# (statistics, page-size checks, level encoding) 3,300 times per million rows.
WRITE_BATCH = 64 * 1024


def _encoding(schema: pa.Schema) -> dict[str, object]:
    """Dictionary pages for text columns with few distinct values (protocol, state, history,
    service, source ...) and min/max statistics for the others (what DuckDB prunes row groups
    by: times, ports, counts, record numbers).

    64-bit integers and times (timestamps, counters, record numbers) are delta-encoded: they
    rise slowly or stay small, so the deltas pack into a few bits before zstd sees them: the
    workload's conn rows are written in 0.44 CPU-s per million instead of 0.52, into 3 % smaller
    files (DuckDB, Polars and Arrow all read the encoding)."""
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_list(f.type)]
    wide = [
        f.name
        for f in schema
        if pa.types.is_timestamp(f.type) or (pa.types.is_integer(f.type) and f.type.bit_width == 64)
    ]
    encodings = dict.fromkeys(wide, "DELTA_BINARY_PACKED")
    encodings.update(
        (name, "DELTA_LENGTH_BYTE_ARRAY") for name in _LENGTH_DELTA_TEXT if name in schema.names
    )
    return {
        "use_dictionary": [name for name in text if name not in _PLAIN_TEXT],
        "write_statistics": [f.name for f in schema if f.name not in text],
        "column_encoding": encodings,
        "write_batch_size": WRITE_BATCH,
    }


class LakeWriter:
    """Collects Arrow tables per lake table and writes them as partitioned Parquet."""

    def __init__(
        self, root: Path, flush_rows: int = FLUSH_ROWS, compression: str = COMPRESSION
    ) -> None:
        if compression not in CODECS:
            raise ValueError(f"lake compression {compression!r} is not one of {', '.join(CODECS)}")
        self.root = Path(root)
        self.flush_rows = flush_rows
        self.compression = compression
        self._parts: dict[str, list[pa.Table]] = {}
        self._rows: dict[str, int] = {}
        # (table, date) -> the open file of that day and its final path, least recently used first.
        self._open: dict[tuple[str, str], tuple[pq.ParquetWriter, Path]] = {}
        self.files: list[Path] = []

    def __call__(self, table: str, data: pa.Table) -> None:
        self.write(table, data)

    def write(self, table: str, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        parts = self._parts.setdefault(table, [])
        schema = schema_of(table)
        # The stages hand over their tables in the lake's schema already; casting anyway costs a
        # compute call per column per batch.
        parts.append(data if data.schema.equals(schema, check_metadata=True) else data.cast(schema))
        self._rows[table] = self._rows.get(table, 0) + data.num_rows
        if self._rows[table] >= self.flush_rows:
            self._flush(table)
        elif len(parts) >= COMPACT_PARTS:
            self._parts[table] = [pa.concat_tables(parts).combine_chunks()]

    def close(self) -> None:
        """Write every buffered row and finish every file (the writer can be used again)."""
        try:
            for table in list(self._parts):
                self._flush(table)
        finally:
            while self._open:
                self._finish(next(iter(self._open)))

    def __enter__(self) -> LakeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush(self, table: str) -> None:
        parts = self._parts.pop(table, [])
        self._rows.pop(table, None)
        if not parts:
            return
        data = pa.concat_tables(parts)
        # Day numbers from the integer microseconds: formatting every row's timestamp as text
        # (pc.strftime) cost more than the Parquet encoding itself.
        micros = data["ts"].cast(pa.int64()).to_numpy()
        for day, chunk in _by_day(data, np.floor_divide(micros, _DAY_US)):
            date = str((_EPOCH + np.timedelta64(day, "D")).astype(str))
            # One row group per flush and day, in the day's open file: a file per flush paid
            # the file's own work (footer, schema, open and close) 130 times on the workload.
            self._file(table, date, chunk.schema).write_table(chunk, row_group_size=len(chunk))

    def _file(self, table: str, date: str, schema: pa.Schema) -> pq.ParquetWriter:
        key = (table, date)
        got = self._open.pop(key, None)
        if got is None:
            if len(self._open) >= MAX_OPEN:
                self._finish(next(iter(self._open)))
            folder = self.root / table / f"date={date}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"part-{uuid.uuid4().hex}.parquet"
            partial = path.with_name(path.name + PARTIAL)
            got = (
                pq.ParquetWriter(
                    partial, schema, compression=self.compression, **_encoding(schema)
                ),
                path,
            )
        self._open[key] = got  # most recently used last
        return got[0]

    def _finish(self, key: tuple[str, str]) -> None:
        writer, path = self._open.pop(key)
        writer.close()
        path.with_name(path.name + PARTIAL).rename(path)
        self.files.append(path)


def _by_day(data: pa.Table, days: np.ndarray) -> list[tuple[int, pa.Table]]:
    """The rows of each day, in their order. A merged capture can span many days in one flush:
    one stable sort and a slice per day cost one pass, where a filter per day cost one pass per
    day (a third of the writer's own CPU on the workload)."""
    lo, hi = int(days.min()), int(days.max())
    if lo == hi:
        return [(lo, data)]
    order = np.argsort(days, kind="stable")
    ordered = days[order]
    data = data.take(pa.array(order))
    cuts = [0, *(np.flatnonzero(ordered[1:] != ordered[:-1]) + 1).tolist(), len(ordered)]
    return [(int(ordered[a]), data.slice(a, b - a)) for a, b in pairwise(cuts)]
