"""The shared counting helpers: ``at_least`` keeps exactly the keys with enough rows; ``shared``
builds findings once per engine run; ``key_hash`` tells keys apart; ``time_order`` is the sort
it stands for."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.detect.windows import at_least, key_hash, shared, sharing, time_order

rows = st.lists(
    st.tuples(st.sampled_from(["10.0.0.1", "10.0.0.2", "::1", ""]), st.integers(0, 3)),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(rows, st.integers(1, 6))
def test_at_least_keeps_whole_keys_with_enough_rows_in_order(data: list, n: int) -> None:
    frame = pl.DataFrame(data, schema={"h": pl.String, "w": pl.Int64}, orient="row")
    frame = frame.with_row_index("i")
    kept = at_least(frame.lazy(), key=("h", "w"), rows=n, keep_all=1.01).collect()
    expected = frame.filter(pl.len().over("h", "w") >= n)
    assert kept.columns == frame.columns  # the hash column does not leak
    assert kept["i"].to_list() == expected["i"].to_list()
    # By default, where the passing keys hold most rows, every row comes back instead.
    loose = at_least(frame.lazy(), key=("h", "w"), rows=n).collect()
    if expected.height >= 0.9 * frame.height:
        assert loose.equals(frame)
    else:
        assert loose.equals(kept)


def test_at_least_takes_expressions_as_keys() -> None:
    frame = pl.DataFrame({"h": ["a", "a", "b", "a"], "t": [1, 2, 3, 11]})
    kept = at_least(frame.lazy(), key=("h", pl.col("t") // 10), rows=2).collect()
    assert kept["t"].to_list() == [1, 2]


events = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 40), st.sampled_from(["x", "y", "z"])),
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(events, st.integers(1, 6))
def test_threshold_evidence_max_is_the_head_of_the_full_evidence(data: list, k: int) -> None:
    """Many ties in time: the bounded evidence is exactly the head of the full, ordered list."""
    from datetime import UTC, datetime, timedelta

    from mamori.detect.windows import threshold

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        [(h, t0 + timedelta(seconds=s), f"u{i}", d) for i, (h, s, d) in enumerate(data)],
        schema={"h": pl.String, "ts": pl.Datetime("us", "UTC"), "uid": pl.String, "d": pl.String},
        orient="row",
    ).lazy()
    args = {"key": ["h"], "window": timedelta(seconds=20), "at_least": 1, "sparse": True}
    full = threshold(frame, **args).sort("h", "window").collect()
    head = threshold(frame, **args, evidence_max=k).sort("h", "window").collect()
    assert head.drop("uids").equals(full.drop("uids"))
    assert head["uids"].to_list() == [u[:k] for u in full["uids"].to_list()]


keyed = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", None]),
        st.sampled_from([1, 2]),
        st.integers(0, 50),
        st.sampled_from(["x", "y", "z", None]),
    ),
    max_size=80,
)


@settings(max_examples=80, deadline=None)
@given(keyed, st.integers(1, 4), st.booleans())
def test_sparse_threshold_counts_as_the_one_pass_does(
    data: list, at_least: int, where_reads_key: bool
) -> None:
    """The sparse path counts by hashes of the key and of the distinct column; it must find
    the same windows, counts, extras and evidence as the one-pass path, which groups by the
    values themselves (null keys and null distinct values included), whether or not its
    ``where`` reads a key column (then the key values are taken while counting)."""
    from datetime import UTC, datetime, timedelta

    from mamori.detect.windows import threshold

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        [(h, k, t0 + timedelta(seconds=s), f"u{i}", d) for i, (h, k, s, d) in enumerate(data)],
        schema={
            "h": pl.String, "k": pl.Int64, "ts": pl.Datetime("us", "UTC"),
            "uid": pl.String, "d": pl.String,
        },
        orient="row",
    ).lazy()  # fmt: skip
    args = {
        "key": ["h", "k"],
        "window": timedelta(seconds=20),
        "at_least": at_least,
        "distinct": "d",
        "extra": [pl.col("k").sum().alias("ksum")],
        "where": (pl.col("n") >= at_least) & ((pl.col("h") != "b") if where_reads_key else True),
    }
    order = ["h", "k", "window"]
    dense = threshold(frame, **args).collect().sort(order, nulls_last=True)
    sparse = threshold(frame, **args, sparse=True).collect().sort(order, nulls_last=True)
    assert sparse.equals(dense)


def test_shared_computes_once_per_scope_frames_and_params() -> None:
    """Inside one engine run the same findings are built once; other frames, other parameters,
    or no scope at all build them again (a detector stays a function of its inputs)."""
    calls: list[int] = []
    a = pl.LazyFrame({"x": [1, 2, 3]})
    b = pl.LazyFrame({"x": [1, 2, 3]})

    def build(frame: pl.LazyFrame, k: int) -> pl.LazyFrame:
        calls.append(k)
        return frame.select(pl.col("x") * k)

    def get(frame: pl.LazyFrame, k: int) -> list[int]:
        return shared("t", (frame,), k, lambda: build(frame, k)).collect()["x"].to_list()

    assert get(a, 2) == get(a, 2) == [2, 4, 6]
    assert len(calls) == 2  # no scope: every call builds
    calls.clear()
    with sharing():
        assert get(a, 2) == [2, 4, 6] and get(a, 2) == [2, 4, 6]
        assert calls == [2]
        assert get(a, 3) == [3, 6, 9] and get(b, 2) == [2, 4, 6]
        assert calls == [2, 3, 2]
    with sharing():  # a new run starts afresh
        get(a, 2)
    assert calls == [2, 3, 2, 2]


def test_shared_builds_once_when_two_threads_ask_at_once() -> None:
    import contextvars
    import threading
    import time

    calls: list[int] = []
    frame = pl.LazyFrame({"x": [1]})

    def build() -> pl.LazyFrame:
        calls.append(1)
        time.sleep(0.05)
        return frame

    out: list[int] = []
    with sharing():
        threads = [
            threading.Thread(
                target=contextvars.copy_context().run,
                args=(lambda: out.append(shared("t", (frame,), 0, build).collect().height),),
            )
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert out == [1, 1, 1, 1] and calls == [1]


keys = st.lists(
    st.tuples(
        st.sampled_from(["10.0.0.1", "10.0.0.2", "::1", "", None]),
        st.one_of(st.none(), st.integers(0, 3)),
        st.sampled_from(["tcp", "udp", None]),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(keys)
def test_key_hash_is_one_value_per_distinct_key(data: list) -> None:
    """Equal keys hash equal; distinct keys (nulls, empty text and swapped fields included)
    differ, as two 64-bit hashes differ but for a chance of about 2^-64 a pair."""
    frame = pl.DataFrame(data, schema={"a": pl.String, "b": pl.Int64, "c": pl.String}, orient="row")
    got = frame.with_columns(h=key_hash(["a", "b", pl.col("c")]))
    per_key = got.group_by("a", "b", "c").agg(pl.col("h").n_unique())
    assert per_key["h"].eq(1).all()
    assert got["h"].n_unique() == per_key.height
    swapped = pl.DataFrame({"x": ["p", "q"], "y": ["q", "p"]})
    assert swapped.select(key_hash(["x", "y"])).to_series().n_unique() == 2


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**64 - 1),
            st.integers(0, 2**40),
            st.one_of(st.none(), st.sampled_from(["Ca", "Cb", "Cc"])),
        ),
        max_size=60,
    ),
    st.sampled_from([1, 3, 2**20, 2**64]),
    st.sampled_from([1, 2**40]),
)
def test_time_order_is_the_three_key_sort(rows: list, groups: int, times: int) -> None:
    """By one packed key where group and time fit in 63 bits, by the two keys otherwise, with
    ties in uid order (nulls last): the same order as sorting by (group, time, uid)."""
    frame = pl.DataFrame(
        [(g % groups, t % times, u) for g, t, u in rows],
        schema={"g": pl.UInt64, "t": pl.Int64, "uid": pl.String},
        orient="row",
    ).with_row_index("i")
    order = time_order(frame["g"].to_numpy(), frame["t"].to_numpy(), frame["uid"])
    expected = frame.sort("g", "t", "uid", nulls_last=True)
    got = frame[order]
    assert sorted(order.tolist()) == list(range(frame.height))
    assert got.select("g", "t", "uid").equals(expected.select("g", "t", "uid"))
    assert isinstance(order, np.ndarray)
