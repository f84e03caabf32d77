"""mamori's ingest pipeline with a Parquet sink, for when ``mamori ingest`` is not there yet.

Usage: python benchmarks/peers/mamori_fallback.py CAPTURE --lake DIR
Writes DIR/<table>/part-N.parquet with pyarrow; prints the rows per table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mamori.config import load_settings
from mamori.flows.pipeline import Ingest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("captures", nargs="+", type=Path)
    ap.add_argument("--lake", type=Path, required=True)
    args = ap.parse_args()
    writers: dict[str, pq.ParquetWriter] = {}

    def sink(table: str, data: pa.Table) -> None:
        w = writers.get(table)
        if w is None:
            (args.lake / table).mkdir(parents=True, exist_ok=True)
            w = pq.ParquetWriter(
                args.lake / table / "part-0.parquet", data.schema, compression="zstd"
            )
            writers[table] = w
        w.write_table(data)

    try:
        stats = Ingest(load_settings(), sink).run(args.captures)
    finally:
        for w in writers.values():
            w.close()
    for s in stats:
        print(s.path, s.packets, s.rows, s.error or "", s.problem or "")


if __name__ == "__main__":
    main()
