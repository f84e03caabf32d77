"""Split a detector's input by its partition key, as a distributed engine does.

Spark runs a detector with ``groupBy(key).applyInArrow``: every row of one key value reaches the
same call, and no call sees another key's rows. These functions do the same split with Polars, so
the contract (all rows of a key decide that key's alerts) is checked on real data, and a Spark
engine computes its grouping columns exactly as here: the key columns, derived where the detector
says how (``Detector.derive``), hashed.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from mamori.detect.base import ALERT_COLUMNS, Detector, Params, empty_alerts

_PREFIX = "__key_"


def keyed(det: Detector, frames: Mapping[str, pl.LazyFrame]) -> dict[str, pl.LazyFrame]:
    """The tables the detector reads, each with its key columns as ``__key_<name>``."""
    out = {}
    for table in det.reads:
        derived = det.derive.get(table, {})
        out[table] = frames[table].with_columns(
            [derived.get(k, pl.col(k)).alias(_PREFIX + k) for k in det.key]
        )
    return out


def partitions(
    det: Detector, frames: Mapping[str, pl.LazyFrame], n: int
) -> list[dict[str, pl.LazyFrame]]:
    """``n`` disjoint inputs; all rows of one key value, in every table, fall in the same one."""
    parts: list[dict[str, pl.LazyFrame]] = [{} for _ in range(n)]
    for table, frame in keyed(det, frames).items():
        cols = [_PREFIX + k for k in det.key]
        bucket = pl.struct(cols).hash(seed=0) % n
        for i in range(n):
            parts[i][table] = frame.filter(bucket == i).drop(cols)
    return parts


def run_partitioned(
    det: Detector, frames: Mapping[str, pl.LazyFrame], n: int, params: Params | None = None
) -> pl.DataFrame:
    """The detector's alerts computed partition by partition (no suppression across them)."""
    base = empty_alerts()
    found = [
        det.run(part, params).select(ALERT_COLUMNS).collect().cast(base.schema, strict=False)  # type: ignore[arg-type]
        for part in partitions(det, frames, n)
    ]
    return pl.concat([base, *found], how="vertical")
