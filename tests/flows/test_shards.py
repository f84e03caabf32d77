"""The compiled shard hash agrees with the plain NumPy statement of the rule, and the split
between workers: each connection is one worker's, carriers of tunnels are tracked by all."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.flows import tracker as T
from mamori.flows.shards import OTHER_SHARD, keep_owned, keep_shard, shard_of
from mamori.sensors.pcap.decode import OK, PacketColumns

TUNNEL_PORTS = (4789, 3544, 2152)  # VXLAN, Teredo, GTP-U: stated here, not imported

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def reference_shard_of(pk: PacketColumns, n: int) -> np.ndarray:
    """The rule with whole-array passes: an order-free hash of each row's own endpoints (ports
    only for TCP, UDP and SCTP), whatever carried the row."""
    proto = pk["proto"].astype(np.uint64)
    ported = (proto == 6) | (proto == 17) | (proto == 132)
    with np.errstate(over="ignore"):
        sport = np.where(ported, pk["sport"].astype(np.uint64), np.uint64(0))
        dport = np.where(ported, pk["dport"].astype(np.uint64), np.uint64(0))
        a = _mix(_mix(pk["src_hi"] ^ sport) ^ pk["src_lo"])
        b = _mix(_mix(pk["dst_hi"] ^ dport) ^ pk["dst_lo"])
        h = _mix(a + b + proto)
    return (h % np.uint64(n)).astype(np.int64)


def reference_everywhere(pk: PacketColumns) -> np.ndarray:
    """Rows every worker tracks: UDP with a tunnel port on either side."""
    ports = np.isin(pk["sport"], TUNNEL_PORTS) | np.isin(pk["dport"], TUNNEL_PORTS)
    return (pk["proto"] == 17) & ports


@st.composite
def batches(draw: st.DrawFn) -> PacketColumns:
    n = draw(st.integers(1, 40))
    # Parents always precede their children, as the decoder and fragment reassembly emit them.
    parent = np.array([draw(st.integers(-1, i - 1)) if i else -1 for i in range(n)], dtype=np.int32)
    u64 = st.integers(0, 2**64 - 1)
    few = st.sampled_from([0, 1, 2**32 + 7, 2**64 - 1])
    ports = st.one_of(st.integers(-1, 65535), st.sampled_from(TUNNEL_PORTS))
    return PacketColumns(
        {
            "parent": parent,
            "proto": np.array(draw(st.lists(st.sampled_from([1, 6, 17, 47, 58, 132]), min_size=n, max_size=n)), np.uint8),
            "sport": np.array(draw(st.lists(ports, min_size=n, max_size=n)), np.int32),
            "dport": np.array(draw(st.lists(ports, min_size=n, max_size=n)), np.int32),
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
def test_both_directions_share_a_shard(pk: PacketColumns) -> None:
    swapped = PacketColumns(dict(pk.cols))
    for a, b in (("sport", "dport"), ("src_hi", "dst_hi"), ("src_lo", "dst_lo")):
        swapped.cols[a], swapped.cols[b] = pk[b], pk[a]
    assert shard_of(pk, 3).tolist() == shard_of(swapped, 3).tolist()


@settings(max_examples=100, deadline=None)
@given(batches(), st.integers(2, 4))
def test_every_ok_row_is_owned_by_exactly_one_worker(pk: PacketColumns, n: int) -> None:
    """A row is tracked by its owner alone, or by every worker when its connection may carry
    tunnels, and then listed as foreign by all but its owner."""
    ok = pk["status"] == OK
    everywhere = reference_everywhere(pk)
    tracked = np.zeros(pk["parent"].shape[0], np.int64)
    owners = np.zeros(pk["parent"].shape[0], np.int64)
    for k in range(n):
        mine = PacketColumns({**pk.cols, "status": pk["status"].copy()})
        foreign = keep_shard(mine, k, n)
        tracked += mine["status"] == OK
        is_foreign = np.zeros(ok.shape[0], np.bool_)
        is_foreign[foreign] = True
        owners += (mine["status"] == OK) & ~is_foreign
        assert (np.diff(foreign) > 0).all()
        assert (is_foreign <= (ok & everywhere)).all()
        # Rows that were not OK are left as they were.
        assert (mine["status"][~ok] == pk["status"][~ok]).all()
        assert set(np.unique(mine["status"][ok]).tolist()) <= {OK, OTHER_SHARD}
    assert (owners[ok] == 1).all()
    assert (tracked[ok & everywhere] == n).all()
    assert (tracked[ok & ~everywhere] == 1).all()


@settings(max_examples=100, deadline=None)
@given(batches(), st.integers(2, 4))
def test_an_ended_connection_is_written_by_its_packets_owner(pk: PacketColumns, n: int) -> None:
    """``keep_owned`` (over the tracker's ended rows) agrees with ``shard_of`` (over packet rows)
    whatever the orientation (the tracker may have flipped originator and responder), and moves
    whole rows: each row's columns, history and sizes stay together."""
    rows = pk["parent"].shape[0]
    state = np.zeros((rows, T.C_EP), np.int64)
    flip = np.arange(rows) % 2 == 1
    for col, a, b in (
        (T.C_OHI, "src_hi", "dst_hi"),
        (T.C_OLO, "src_lo", "dst_lo"),
        (T.C_RHI, "dst_hi", "src_hi"),
        (T.C_RLO, "dst_lo", "src_lo"),
        (T.C_OP, "sport", "dport"),
        (T.C_RP, "dport", "sport"),
    ):
        state[:, col] = np.where(flip, pk[b].astype(np.int64), pk[a].astype(np.int64))
    state[:, T.C_PROTO] = pk["proto"]
    state[:, T.C_NO] = np.arange(rows)  # which row is which, after the moves
    hist = (np.arange(rows)[:, None] + np.arange(T.HIST_MAX)[None, :]).astype(np.uint8)
    hist_len = np.arange(rows, dtype=np.int32)
    size = np.stack([np.arange(rows), -np.arange(rows)], axis=1).astype(np.int64)
    shards = reference_shard_of(pk, n)
    everywhere = reference_everywhere(pk)
    for k in range(n):
        s, h, hl, sz = state.copy(), hist.copy(), hist_len.copy(), size.copy()
        m = keep_owned(s, h, hl, sz, k, n)
        want = np.flatnonzero(~everywhere | (shards == k))
        assert sorted(s[:m, T.C_NO].tolist()) == want.tolist()
        assert sorted(s[:, T.C_NO].tolist()) == list(range(rows))
        order = s[:, T.C_NO]
        assert (s == state[order]).all() and (h == hist[order]).all()
        assert (hl == hist_len[order]).all() and (sz == size[order]).all()
    assert keep_owned(state.copy(), hist, hist_len, size, 0, 1) == rows
