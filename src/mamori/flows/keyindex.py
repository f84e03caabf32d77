"""The tracker's map from a canonical 5-tuple to its state slot, as a flat open-addressing table.

A Numba typed dict did this job first, but creating one compiles its methods in every process
(about 0.9 s, which the on-disk cache cannot keep) and each lookup paid for a boxed tuple key. The
keys already live in the tracker's ``K`` array (one row of five int64 per slot), so the index only
needs slot numbers: ``idx[pos]`` is -1 or an entry holding a slot, positions are probed linearly
from the key's hash, and deletion shifts later entries back (no tombstones, so probe chains never
rot on a capture that opens and ends millions of connections). The table is kept at most half
full; the tracker rebuilds it whenever its slot arrays grow.

An entry keeps the upper 32 bits of its key's hash beside the slot (``tag << 32 | slot``): the
position is taken from those bits, so a probe compares tags before it reads a key from ``K`` and a
deletion finds where a shifted entry belongs without rehashing its key. On a capture of scans and
floods nearly every packet opens a connection, and those reads of ``K`` were most of the index's
cost.

The functions the tracker's kernels call compile without Numba's reference counting (``_nrt``
off; they allocate nothing): with it, each call paid an atomic increment and decrement per array.
"""

from __future__ import annotations

import numba as nb
import numpy as np

EMPTY = -1
_SLOT = np.int64(0xFFFFFFFF)
_TAG = np.int64(-1) ^ _SLOT


def new_index(slots: int) -> np.ndarray:
    """An empty index for ``slots`` state slots (a power of two, at least twice as large)."""
    size = 1 << max(4, int(2 * slots - 1).bit_length())
    return np.full(size, EMPTY, np.int64)


@nb.njit(cache=True, inline="always")
def _mix(h: np.uint64, v: np.int64) -> np.uint64:
    h ^= np.uint64(v) + np.uint64(0x9E3779B97F4A7C15) + (h << np.uint64(6)) + (h >> np.uint64(2))
    return h


@nb.njit(cache=True, inline="always")
def key_hash(a: np.int64, b: np.int64, c: np.int64, d: np.int64, e: np.int64) -> np.uint64:
    h = np.uint64(0)
    h = _mix(h, a)
    h = _mix(h, b)
    h = _mix(h, c)
    h = _mix(h, d)
    h = _mix(h, e)
    # Final avalanche (splitmix64): addresses differ in few bits, the table uses the low ones.
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@nb.njit(cache=True, inline="always")
def tag_of(h: np.uint64) -> np.int64:
    """The bits of a hash an entry keeps; its home position is ``tag & mask``."""
    return np.int64(h >> np.uint64(32))


@nb.njit(cache=True, inline="always")
def slot_at(idx: np.ndarray, p: np.int64) -> np.int64:
    """The slot of the entry at position ``p``."""
    return idx[p] & _SLOT


@nb.njit(cache=True, inline="always")
def find_tagged(
    idx: np.ndarray,
    K: np.ndarray,
    tag: np.int64,
    a: np.int64,
    b: np.int64,
    c: np.int64,
    d: np.int64,
    e: np.int64,
) -> np.int64:
    """``find`` for a key whose ``tag_of(key_hash(...))`` is known."""
    mask = idx.shape[0] - 1
    p = tag & mask
    want = tag << 32
    while True:
        v = idx[p]
        if v == EMPTY:
            return -1 - p
        if (v & _TAG) == want:
            s = v & _SLOT
            if K[s, 0] == a and K[s, 1] == b and K[s, 2] == c and K[s, 3] == d and K[s, 4] == e:
                return p
        p = (p + 1) & mask


@nb.njit(cache=True, inline="always")
def find(
    idx: np.ndarray, K: np.ndarray, a: np.int64, b: np.int64, c: np.int64, d: np.int64, e: np.int64
) -> np.int64:
    """Position of the key in ``idx`` if present (>= 0), else ``-1 - p`` for the free position p."""
    return find_tagged(idx, K, tag_of(key_hash(a, b, c, d, e)), a, b, c, d, e)


@nb.njit(cache=True, inline="always")
def put(idx: np.ndarray, p: np.int64, tag: np.int64, s: np.int64) -> None:
    """Store slot ``s`` at the free position ``p`` that ``find`` reported (as ``-1 - p``)."""
    idx[p] = (tag << 32) | s


@nb.njit(cache=True, _nrt=False)
def insert(idx: np.ndarray, K: np.ndarray, s: np.int64) -> None:
    """Add slot ``s``, whose key ``K[s]`` is not in the index yet."""
    tag = tag_of(key_hash(K[s, 0], K[s, 1], K[s, 2], K[s, 3], K[s, 4]))
    p = find_tagged(idx, K, tag, K[s, 0], K[s, 1], K[s, 2], K[s, 3], K[s, 4])
    put(idx, -1 - p, tag, s)


@nb.njit(cache=True, _nrt=False)
def remove_at(idx: np.ndarray, K: np.ndarray, p: np.int64) -> None:
    """Empty position ``p``, shifting back the entries whose probe chain passed through it."""
    mask = idx.shape[0] - 1
    i = p
    j = p
    while True:
        j = (j + 1) & mask
        v = idx[j]
        if v == EMPTY:
            break
        home = (v >> 32) & mask
        # The entry at j may stay only if its home lies cyclically in (i, j].
        stays = (i < home <= j) if i <= j else (home > i or home <= j)
        if stays:
            continue
        idx[i] = v
        i = j
    idx[i] = EMPTY


@nb.njit(cache=True, _nrt=False)
def remove_slot(idx: np.ndarray, K: np.ndarray, s: np.int64) -> None:
    """Remove slot ``s`` (whose key is ``K[s]``) from the index."""
    p = find(idx, K, K[s, 0], K[s, 1], K[s, 2], K[s, 3], K[s, 4])
    if p >= 0:
        remove_at(idx, K, p)


@nb.njit(cache=True, _nrt=False)
def rebuild(idx: np.ndarray, K: np.ndarray, used: np.ndarray) -> None:
    """Fill an empty ``idx`` with every used slot of ``K``."""
    for s in range(used.shape[0]):
        if used[s]:
            insert(idx, K, s)
