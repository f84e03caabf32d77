"""The tracker's 5-tuple index behaves as a dict under any sequence of inserts and removals.

Backward-shift deletion is where open addressing goes wrong (an entry left behind a hole becomes
unfindable), so the property test drives a tiny table with keys chosen to collide, against a dict.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.flows.keyindex import (
    EMPTY,
    find,
    insert,
    new_index,
    rebuild,
    remove_at,
    remove_slot,
    slot_at,
)

SLOTS = 24
PACKED = 32  # positions: far fuller than the tracker's tables, so probe chains run long


def _insert(idx: np.ndarray, K: np.ndarray, s: int, key: tuple[int, ...]) -> None:
    K[s] = key
    p = find(idx, K, *(np.int64(v) for v in key))
    assert p < 0, "inserting a key already present"
    insert(idx, K, np.int64(s))


def _lookup(idx: np.ndarray, K: np.ndarray, key: tuple[int, ...]) -> int:
    p = find(idx, K, *(np.int64(v) for v in key))
    return int(slot_at(idx, p)) if p >= 0 else -1


# Few distinct values per field, and a table three-quarters full: chains overlap all the time.
# An operation adds its key, or removes the present key it picks by index (by slot or position).
_key = st.tuples(*[st.integers(-3, 3)] * 4, st.integers(0, 40))
_ops = st.lists(st.tuples(st.booleans(), _key, st.integers(0, SLOTS), st.booleans()), max_size=200)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_index_agrees_with_a_dict(ops: list[tuple[bool, tuple[int, ...], int, bool]]) -> None:
    idx = np.full(PACKED, -1, np.int64)
    K = np.zeros((SLOTS, 5), np.int64)
    free = list(range(SLOTS))
    ref: dict[tuple[int, ...], int] = {}
    for add, key, pick, by_slot in ops:
        if add and key not in ref and free:
            s = free.pop()
            _insert(idx, K, s, key)
            ref[key] = s
        elif not add and ref:
            gone = list(ref)[pick % len(ref)]
            s = ref.pop(gone)
            if by_slot:
                remove_slot(idx, K, np.int64(s))
            else:
                remove_at(idx, K, find(idx, K, *(np.int64(v) for v in gone)))
            free.append(s)
        for k, s in ref.items():
            assert _lookup(idx, K, k) == s
        assert int((idx != EMPTY).sum()) == len(ref)
    # A rebuilt index (what the tracker does when its slots grow) finds the same slots.
    used = np.zeros(SLOTS, np.bool_)
    used[list(ref.values())] = True
    fresh = np.full(PACKED, -1, np.int64)
    rebuild(fresh, K, used)
    for k, s in ref.items():
        assert _lookup(fresh, K, k) == s


def test_index_is_at_most_half_full() -> None:
    for slots in (1, 2, 3, 1000, 1 << 14, (1 << 14) + 1):
        assert new_index(slots).shape[0] >= 2 * slots
