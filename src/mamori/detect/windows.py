"""Shared windowed counting (Zeek's SumStats idea): detectors state a policy, never a counter.

Each helper takes a LazyFrame of observations and returns one row per key and window in which a
threshold was crossed, with the observations' time span and evidence uids, so every detector
reports the same way and no detector hand-rolls its own bookkeeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

import numpy as np
import polars as pl

_WINDOW = "__window"
_HASH = "__key_hash"
_KEY = "__key"
# Share of rows at which ``at_least`` stops filtering (see there).
KEEP_ALL = 0.9
# Odd, so multiplying a 64-bit word by it (wrapping) is a bijection: see ``key_hash``.
_MIX = 0x9E3779B97F4A7C15


def key_hash(key: Sequence[str | pl.Expr]) -> pl.Expr:
    """A 64-bit hash of each row's ``key`` columns, combined from each column's own hash.

    Not ``pl.struct(key).hash()``, which hashes the row's fields one row at a time: over bench_
    detect's 10 M connections a five-column key (two of them text) took 0.63 s that way and 0.22
    combined from whole-column hashes. Each column has its own seed, and the running value is
    multiplied by an odd constant before the next column's hash is mixed in (a bijection of
    64-bit words), so two different keys share a value with the chance of two independent
    64-bit hashes. A null hashes to a constant of its position, not to any value's hash but by
    that same chance."""
    if not key:
        raise ValueError("key_hash needs at least one column")
    out: pl.Expr | None = None
    for i, k in enumerate(key):
        h = (pl.col(k) if isinstance(k, str) else k).hash(seed=i)
        out = h if out is None else (out * pl.lit(_MIX, pl.UInt64)) ^ h
    assert out is not None
    return out


class _Shared:
    """Findings already computed in one engine run, by (name, input frames, params)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: dict[Hashable, tuple[tuple[pl.LazyFrame, ...], pl.DataFrame]] = {}
        self.busy: dict[Hashable, threading.Lock] = {}


_SHARING: ContextVar[_Shared | None] = ContextVar("mamori_detect_sharing", default=None)


@contextmanager
def sharing() -> Iterator[None]:
    """Within it, :func:`shared` computes each intermediate result once for every detector.

    Opened by an engine around one run over one set of frames (threads it starts for detectors
    see it if they run in a copy of its context, ``contextvars.copy_context()``); outside it (a
    test calling one detector, an engine running each partition separately) every call computes
    its own."""
    token = _SHARING.set(_Shared())
    try:
        yield
    finally:
        _SHARING.reset(token)


def shared(
    name: str,
    frames: Sequence[pl.LazyFrame],
    params: Hashable,
    build: Callable[[], pl.LazyFrame],
) -> pl.LazyFrame:
    """``build()``, collected once per sharing scope for the same ``name``, input ``frames`` (the
    same objects) and ``params`` (equal), so two detectors that report two readings of the same
    counts (backscatter and TCP reflection) count once, and neither calls the other.

    The result is collected (it should be a detector's few findings, not its observations) and
    handed back as a LazyFrame over that frame; the frames are held with it, so their ids cannot
    be reused for other frames while the scope is open. A detector stays a function of the frames
    it is given: with different frames or parameters the key differs and the work is done again.
    """
    scope = _SHARING.get()
    if scope is None:
        return build()
    key = (name, tuple(id(f) for f in frames), params)
    with scope.lock:
        busy = scope.busy.setdefault(key, threading.Lock())
    with busy:  # a second thread asking for the same findings waits for the first
        hit = scope.done.get(key)
        if hit is None:
            hit = scope.done[key] = (tuple(frames), build().collect())
    return hit[1].lazy()


def time_order(group: np.ndarray, ts: np.ndarray, uid: pl.Series) -> np.ndarray:
    """Row indices in (group, time, uid) order (a null uid last among its equals): each group's
    rows together and in a total time order, for a detector that walks them in sequence (TRW's
    walks, a beacon's check-ins). ``group`` and ``ts`` are 64-bit integer codes.

    Not ``DataFrame.sort`` by the three columns: it encodes every row's fields and compares the
    encodings, 3.6 CPU-s for the 6.4 M events of bench_detect's day where sorting the two
    integer columns takes 0.8. One packed key sorts group and time where both fit in 63 bits
    (a day's microseconds take 37: TRW's 9.7 M contacts took 0.6 s that way, 0.95 as two keys);
    only rows equal in both are then put in uid order, among themselves."""
    order, same = _group_time_order(group, ts)
    if same.any():
        tie = np.zeros(len(order), np.bool_)
        tie[1:] |= same
        tie[:-1] |= same
        at = np.flatnonzero(tie)
        rows = pl.DataFrame(
            {
                "i": order[at],
                "g": group[order[at]],
                "t": ts[order[at]],
                "uid": uid.gather(order[at]),
            }
        )
        order[at] = rows.sort("g", "t", "uid", nulls_last=True)["i"].to_numpy()
    return order


def _group_time_order(group: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row order by (group, time), ties in any order, and whether each row along it equals the
    next in both (told from the packed key where there is one: gathering the two columns in
    the new order to compare them took 0.7 s of TRW's 9.9 M contacts, the key 0.16)."""
    if group.shape[0] < 2:
        return np.arange(group.shape[0], dtype=np.intp), np.zeros(0, np.bool_)
    lo = int(ts.min())
    bits = (int(ts.max()) - lo).bit_length()
    if int(group.min()) >= 0 and int(group.max()).bit_length() + bits <= 62:
        key = (group.astype(np.int64) << bits) | (ts - lo)
        order = np.argsort(key)
        k = key[order]
        return order, k[1:] == k[:-1]
    order = np.lexsort((ts, group))
    g, t = group[order], ts[order]
    return order, (g[1:] == g[:-1]) & (t[1:] == t[:-1])


def at_least(
    obs: pl.LazyFrame, *, key: Sequence[str | pl.Expr], rows: int, keep_all: float = KEEP_ALL
) -> pl.LazyFrame:
    """The rows of ``obs`` whose ``key`` has at least ``rows`` rows, in their input order: a
    pre-filter for a detector that cannot report a key with fewer observations. Every row of
    such a key is kept; rows of other keys may be kept too (below), so a detector must not rely
    on their absence.

    A day of traffic has millions of keys with a row or two (a flood's spoofed sources, one-off
    fetches) and a few worth judging; dropping the rest before any string is coded, formatted or
    sorted is most of the work saved. Keys are counted by a 64-bit hash of their columns, which is
    cheap on strings: a collision merges two keys' counts, so it can only keep more rows, never
    drop one, and every key kept is kept whole, so the detector's verdicts do not change.

    When the keys that pass hold at least ``keep_all`` of the rows, ``obs`` comes back unfiltered:
    the filter (a second hash of every row, tested against every passing key) would drop little
    and cost more than the detector saves on what it drops. On a site's day where most sources
    are busy clients (bench_detect's 10 M records) scan.trw's filter kept 9.7 M of 9.9 M rows
    and was a third of the detector's time.

    The counts are collected when the detector's plan is built (they are few rows), so calling a
    detector that uses this does work. The contract is unchanged: a detector is still a function
    of the frames it is given, so an engine running it per partition key gets the same result.
    """
    if rows <= 1:
        return obs
    hashed = key_hash(key)
    counts = obs.select(hashed.alias(_HASH)).group_by(_HASH).agg(pl.len().alias("__n"))
    got = counts.select(
        pl.col("__n").sum().alias("total"),
        pl.col("__n").filter(pl.col("__n") >= rows).sum().alias("kept"),
        pl.col(_HASH).filter(pl.col("__n") >= rows).implode().alias("keys"),
    ).collect()
    total, kept = got["total"][0] or 0, got["kept"][0] or 0
    if kept >= keep_all * total:
        return obs
    if kept == 0:  # no key has enough rows: nothing to read again
        return obs.clear()
    # Counted now, so that the rows are kept by a plain filter, which the scan applies as it
    # reads: a join against the counts would hold every row and column of ``obs`` at once.
    return obs.filter(hashed.is_in(got["keys"]))


def threshold(
    obs: pl.LazyFrame,
    *,
    key: Sequence[str],
    window: timedelta,
    at_least: int,
    distinct: str | None = None,
    ts: str = "ts",
    uid: str = "uid",
    extra: Sequence[pl.Expr] = (),
    where: pl.Expr | None = None,
    sparse: bool = False,
    evidence_max: int | None = None,
) -> pl.LazyFrame:
    """Keys whose observations in a tumbling ``window`` reach ``at_least`` (distinct values of
    ``distinct`` if given, else rows). Returns key columns, ``window``, ``n`` (rows), ``distinct_n``,
    ``first_seen``, ``last_seen`` and ``uids`` (in time order; ties keep the input's order).

    ``extra`` aggregates more columns over the same windows (packets, bytes, ports) and ``where``
    is a further test on the counted row (it may use the columns above but ``uids``, and the
    extras'); both are applied before the evidence lists are built.

    ``sparse``: few of many windows will pass (a day of traffic has millions of (key, window)
    groups and a handful of attacks), so count first in a flat aggregation, then build evidence
    lists only for the windows that passed (reading ``obs`` twice: the counts are collected when
    the plan is built, then ``obs`` is filtered to what passed as it is read, rather than cached
    whole; :func:`at_least` says why). Otherwise one pass
    builds them for every window, which is cheaper when ``obs`` is small or mostly passes.

    ``evidence_max`` (sparse only): ``uids`` keeps the window's first ``evidence_max`` uids, for a
    detector whose evidence is only that head. A flood's window holds millions of rows; only
    those at or before its ``evidence_max``-th earliest time are sorted and listed (a bounded
    selection, not a sort), and a stable sort of those gives exactly the head of the full list.
    """
    key = list(key)
    every = f"{int(window.total_seconds() * 1_000_000)}us"
    groups = [*key, _WINDOW]
    aggs = [
        pl.len().alias("n"),
        (pl.col(distinct).n_unique() if distinct else pl.len()).alias("distinct_n"),
        pl.col(ts).min().alias("first_seen"),
        pl.col(ts).max().alias("last_seen"),
        *extra,
    ]
    obs = obs.with_columns(pl.col(ts).dt.truncate(every).alias(_WINDOW))
    names = [e.meta.output_name() for e in extra]
    columns = [*key, "window", "n", "distinct_n", "first_seen", "last_seen", "uids", *names]
    if not sparse:
        every_window = (
            obs.sort(ts, maintain_order=True)
            .group_by(groups, maintain_order=True)
            .agg(*aggs, uids=pl.col(uid))
            .filter(pl.col("distinct_n") >= at_least)
        )
        if where is not None:
            every_window = every_window.filter(where)
        return every_window.rename({_WINDOW: "window"}).select(columns)
    # Counted by a 64-bit hash of the key, not the key's text: grouping millions of rows by
    # address strings (and counting distinct source addresses as strings) was most of a flood's
    # counting. A window's key values are its first row's (a window's rows share them), taken
    # with the evidence of the windows that passed, not for every window counted (millions of
    # text values on a busy day), unless ``where`` reads them. A hash shared by two keys' rows
    # in one window would merge their counts, and two distinct values sharing one would count
    # once: the chance is about k^2 / 2^65 for k keys or values a window (3e-8 for a million),
    # said here, not guarded.
    schema = obs.collect_schema()
    firsts = [pl.col(k).first() for k in key]
    early = where is not None and bool(set(where.meta.root_names()) & set(key))
    counts = [_KEY, _WINDOW]
    if distinct and schema[distinct] == pl.String:
        aggs[1] = pl.col(distinct).hash(seed=0).n_unique().alias("distinct_n")
    obs = obs.with_columns(key_hash(key).alias(_KEY))
    counted = (
        obs.group_by(counts)
        .agg(*(firsts if early else []), *aggs)
        .filter(pl.col("distinct_n") >= at_least)
    )
    if where is not None:
        counted = counted.filter(where)
    # Counted now (a few rows), and ``obs`` read again for the evidence, filtered as it is read:
    # kept for a second reading, every row and column of it would be held at once.
    done = counted.collect()
    counted = done.lazy()
    # Rows of the windows that passed, by a hash of (key hash, window): a window whose hash
    # is shared with a passing one lets its rows through, but they form their own groups below,
    # which the join back onto the counted windows drops, so no exact check is needed here.
    window_hash = key_hash(counts)
    if done.height:
        passed = obs.filter(window_hash.is_in(done.select(window_hash).to_series().implode()))
    else:  # nothing passed (most detectors, most days): no second reading at all
        passed = obs.clear()
    listed = pl.col(uid)
    if evidence_max is not None:
        # The first evidence_max rows in (time, input) order are all at or before the window's
        # evidence_max-th earliest time; ties at that time are kept, the stable sort orders them.
        cut = pl.col(ts).bottom_k(evidence_max).max().over(counts)
        passed = passed.filter(pl.col(ts) <= cut)
        listed = listed.head(evidence_max)
    uids = (
        passed.sort(ts, maintain_order=True)
        .group_by(counts, maintain_order=True)
        .agg(*([] if early else firsts), uids=listed)
    )
    return (
        counted.join(uids, on=counts, how="left", nulls_equal=True)
        .rename({_WINDOW: "window"})
        .select(columns)
    )
