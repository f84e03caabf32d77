"""The shared counting helpers: ``at_least`` keeps exactly the keys with enough rows."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.detect.windows import at_least

rows = st.lists(
    st.tuples(st.sampled_from(["10.0.0.1", "10.0.0.2", "::1", ""]), st.integers(0, 3)),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(rows, st.integers(1, 6))
def test_at_least_keeps_whole_keys_with_enough_rows_in_order(data: list, n: int) -> None:
    frame = pl.DataFrame(data, schema={"h": pl.String, "w": pl.Int64}, orient="row")
    frame = frame.with_row_index("i")
    kept = at_least(frame.lazy(), key=("h", "w"), rows=n).collect()
    expected = frame.filter(pl.len().over("h", "w") >= n)
    assert kept.columns == frame.columns  # the hash column does not leak
    assert kept["i"].to_list() == expected["i"].to_list()


def test_at_least_takes_expressions_as_keys() -> None:
    frame = pl.DataFrame({"h": ["a", "a", "b", "a"], "t": [1, 2, 3, 11]})
    kept = at_least(frame.lazy(), key=("h", pl.col("t") // 10), rows=2).collect()
    assert kept["t"].to_list() == [1, 2]
