"""CPU and size of writing one lake table with each Parquet codec, as the lake writer writes it.

    python benchmarks/parquet_codecs.py LAKE [--table conn] [--rows 1680000]

Reads ``rows`` rows of a table of an existing lake (e.g. one ``mamori ingest`` wrote from the
workload; 1.68 M conn rows is one ingest shard's), then writes them to memory in the writer's
row groups (``FLUSH_ROWS``) with the writer's own column options (``lake.writer._encoding``) and
each codec in turn: CPU seconds (best of 3) and bytes. What the ``lake_compression`` setting
trades.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from mamori.lake.writer import FLUSH_ROWS, _encoding
from mamori.schema import schema_of

CASES: list[tuple[str, str, int | None]] = [
    ("snappy", "snappy", None),
    ("zstd 1", "zstd", 1),
    ("zstd -1", "zstd", -1),
    ("zstd -3", "zstd", -3),
    ("lz4", "lz4", None),
    ("none", "none", None),
]


def write_cost(table: pa.Table, codec: str, level: int | None) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(3):
        sink = io.BytesIO()
        start = time.process_time()
        writer = pq.ParquetWriter(
            sink,
            table.schema,
            compression=codec,
            compression_level=level,
            **_encoding(table.schema),
        )
        for off in range(0, len(table), FLUSH_ROWS):
            chunk = table.slice(off, FLUSH_ROWS)
            writer.write_table(chunk, row_group_size=len(chunk))
        writer.close()
        best = min(best, time.process_time() - start)
        size = sink.tell()
    return best, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("lake", type=Path)
    ap.add_argument("--table", default="conn")
    ap.add_argument("--rows", type=int, default=1_680_000)
    args = ap.parse_args()
    schema = schema_of(args.table)
    data = ds.dataset(args.lake / args.table, format="parquet").to_table()
    data = data.select(schema.names).cast(schema).slice(0, args.rows).combine_chunks()
    print(f"{args.table}: {len(data):,} rows, row groups of {FLUSH_ROWS:,}")
    print("| codec | CPU s (best of 3) | MB |")
    print("|---|---:|---:|")
    for label, codec, level in CASES:
        cpu, size = write_cost(data, codec, level)
        print(f"| {label} | {cpu:.3f} | {size / 1e6:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
