"""The compiled shard hash agrees with the plain NumPy statement of the rule."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.flows.shards import OTHER_SHARD, keep_shard, shard_of
from mamori.sensors.pcap.decode import OK, PacketColumns

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def reference_shard_of(pk: PacketColumns, n: int) -> np.ndarray:
    """The rule with whole-array passes: the root of each row's parent chain, an order-free hash
    of its endpoints (ports only for TCP, UDP and SCTP)."""
    parent = pk["parent"].astype(np.int64)
    root = np.arange(parent.shape[0], dtype=np.int64)
    up = parent.copy()
    while (up >= 0).any():
        has = up >= 0
        root = np.where(has, up, root)
        up = np.where(has, parent[np.maximum(up, 0)], -1)
    proto = pk["proto"][root].astype(np.uint64)
    ported = (proto == 6) | (proto == 17) | (proto == 132)
    with np.errstate(over="ignore"):
        sport = np.where(ported, pk["sport"][root].astype(np.uint64), np.uint64(0))
        dport = np.where(ported, pk["dport"][root].astype(np.uint64), np.uint64(0))
        a = _mix(_mix(pk["src_hi"][root] ^ sport) ^ pk["src_lo"][root])
        b = _mix(_mix(pk["dst_hi"][root] ^ dport) ^ pk["dst_lo"][root])
        h = _mix(a + b + proto)
    return (h % np.uint64(n)).astype(np.int64)


@st.composite
def batches(draw: st.DrawFn) -> PacketColumns:
    n = draw(st.integers(1, 40))
    # Parents always precede their children, as the decoder and fragment reassembly emit them.
    parent = np.array([draw(st.integers(-1, i - 1)) if i else -1 for i in range(n)], dtype=np.int32)
    u64 = st.integers(0, 2**64 - 1)
    few = st.sampled_from([0, 1, 2**32 + 7, 2**64 - 1])
    return PacketColumns(
        {
            "parent": parent,
            "proto": np.array(draw(st.lists(st.sampled_from([1, 6, 17, 47, 58, 132]), min_size=n, max_size=n)), np.uint8),
            "sport": np.array(draw(st.lists(st.integers(-1, 65535), min_size=n, max_size=n)), np.int32),
            "dport": np.array(draw(st.lists(st.integers(-1, 65535), min_size=n, max_size=n)), np.int32),
            "src_hi": np.array(draw(st.lists(few, min_size=n, max_size=n)), np.uint64),
            "src_lo": np.array(draw(st.lists(u64, min_size=n, max_size=n)), np.uint64),
            "dst_hi": np.array(draw(st.lists(few, min_size=n, max_size=n)), np.uint64),
            "dst_lo": np.array(draw(st.lists(u64, min_size=n, max_size=n)), np.uint64),
            "status": np.array(draw(st.lists(st.sampled_from([OK, 1, 5]), min_size=n, max_size=n)), np.uint8),
        }
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(batches(), st.integers(1, 5))
def test_compiled_hash_matches_the_reference(pk: PacketColumns, n: int) -> None:
    assert shard_of(pk, n).tolist() == reference_shard_of(pk, n).tolist()


@settings(max_examples=100, deadline=None)
@given(batches())
def test_both_directions_and_tunnelled_rows_share_a_shard(pk: PacketColumns) -> None:
    swapped = PacketColumns(dict(pk.cols))
    for a, b in (("sport", "dport"), ("src_hi", "dst_hi"), ("src_lo", "dst_lo")):
        swapped.cols[a], swapped.cols[b] = pk[b], pk[a]
    got = shard_of(pk, 3)
    assert got.tolist() == shard_of(swapped, 3).tolist()
    parent = pk["parent"]
    child = parent >= 0
    assert (got[child] == got[parent[child]]).all()


@settings(max_examples=100, deadline=None)
@given(batches(), st.integers(2, 4))
def test_every_ok_row_is_kept_by_exactly_one_worker(pk: PacketColumns, n: int) -> None:
    kept = np.zeros(pk["parent"].shape[0], np.int64)
    for k in range(n):
        mine = PacketColumns({**pk.cols, "status": pk["status"].copy()})
        keep_shard(mine, k, n)
        kept += mine["status"] == OK
        # Rows that were not OK are left as they were.
        assert (mine["status"][pk["status"] != OK] == pk["status"][pk["status"] != OK]).all()
        assert set(np.unique(mine["status"][pk["status"] == OK]).tolist()) <= {OK, OTHER_SHARD}
    assert (kept[pk["status"] == OK] == 1).all()
