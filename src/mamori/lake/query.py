"""Open the lake in DuckDB: one view per table over its Parquet files."""

from __future__ import annotations

from pathlib import Path

import duckdb

from mamori.schema import TABLES


class LakeError(Exception):
    """The lake folder is missing or holds no tables."""


def connect(root: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view for every table present in the lake."""
    root = Path(root)
    if not root.is_dir():
        raise LakeError(f"{root}: no such lake folder")
    con = duckdb.connect()
    found = 0
    for table in TABLES:
        if any((root / table).glob("date=*/*.parquet")):
            pattern = (root / table / "date=*" / "*.parquet").as_posix().replace("'", "''")
            con.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{pattern}', "
                "hive_partitioning = true, union_by_name = true)"
            )
            found += 1
    if not found:
        raise LakeError(f"{root}: no lake tables found (run `mamori ingest` first)")
    return con
