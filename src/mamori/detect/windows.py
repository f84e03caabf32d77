"""Shared windowed counting (Zeek's SumStats idea): detectors state a policy, never a counter.

Each helper takes a LazyFrame of observations and returns one row per key and window in which a
threshold was crossed, with the observations' time span and evidence uids, so every detector
reports the same way and no detector hand-rolls its own bookkeeping.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import polars as pl


def threshold(
    obs: pl.LazyFrame,
    *,
    key: Sequence[str],
    window: timedelta,
    at_least: int,
    distinct: str | None = None,
    ts: str = "ts",
    uid: str = "uid",
) -> pl.LazyFrame:
    """Keys whose observations in a tumbling ``window`` reach ``at_least`` (distinct values of
    ``distinct`` if given, else rows). Returns key columns, ``window``, ``n`` (rows), ``distinct_n``,
    ``first_seen``, ``last_seen`` and ``uids``."""
    every = f"{int(window.total_seconds() * 1_000_000)}us"
    counted = (
        obs.sort(ts)
        .group_by_dynamic(ts, every=every, group_by=list(key), label="left")
        .agg(
            n=pl.len(),
            distinct_n=pl.col(distinct).n_unique() if distinct else pl.len(),
            first_seen=pl.col(ts).min(),
            last_seen=pl.col(ts).max(),
            uids=pl.col(uid),
        )
        .rename({ts: "window"})
    )
    return counted.filter(pl.col("distinct_n") >= at_least)
