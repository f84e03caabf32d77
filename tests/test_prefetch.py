"""The prefetch hint the kernels use: it changes no result, wherever it points."""

from __future__ import annotations

import numba as nb
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from mamori.prefetch import prefetch


@nb.njit(cache=True)
def _sum_prefetching(a: np.ndarray, order: np.ndarray, ahead: int) -> int:
    total = 0
    for i in range(order.shape[0]):
        if i + ahead < order.shape[0]:
            prefetch(a, order[i + ahead])
        total += a[order[i]]
    return total


@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=200), st.integers(0, 16))
def test_prefetch_is_only_a_hint(values: list[int], ahead: int) -> None:
    a = np.array(values, np.int64)
    order = np.random.default_rng(len(values)).permutation(len(values))
    assert _sum_prefetching(a, order, ahead) == int(a.sum())


@nb.njit(cache=True)
def _sum_prefetching_past(a: np.ndarray, ahead: int) -> int:
    total = 0
    for i in range(a.shape[0]):
        prefetch(a, i + ahead)  # the capture walkers ask past their buffer's end near its end
        total += a[i]
    return total


@given(st.integers(1, 64), st.sampled_from([1, 64, 1024, 1 << 20, 1 << 40]))
def test_prefetch_past_the_end_never_faults(n: int, ahead: int) -> None:
    a = np.arange(n, dtype=np.int64)
    assert _sum_prefetching_past(a, ahead) == n * (n - 1) // 2
