"""Small intel stores and lake tables built from literal rows, for the matching tests."""

from __future__ import annotations

import polars as pl

from mamori.intel.schema import SCHEMA
from mamori.schema import TABLES, schema_of


def indicators(rows: list[tuple[str, str, int | None]]) -> pl.DataFrame:
    """Indicators of the store's schema from (type, value, port) rows."""
    base = pl.from_arrow(SCHEMA.empty_table())
    data = pl.DataFrame(
        {"id": [f"i{n}" for n in range(len(rows))], "type": [r[0] for r in rows],
         "value": [r[1] for r in rows], "port": [r[2] for r in rows]},
        schema_overrides={"port": pl.UInt16},
    )  # fmt: skip
    return pl.concat([base, data], how="diagonal_relaxed")  # type: ignore[list-item]


def lake_frames(**tables: list[dict]) -> dict[str, pl.LazyFrame]:  # type: ignore[type-arg]
    """Every lake table, empty unless rows are given for it."""
    out = {}
    for t in TABLES:
        empty = pl.from_arrow(schema_of(t).empty_table())
        rows = tables.get(t, [])
        out[t] = (
            pl.concat([empty, pl.DataFrame(rows)], how="diagonal_relaxed") if rows else empty
        ).lazy()  # type: ignore[union-attr,list-item]
    return out
