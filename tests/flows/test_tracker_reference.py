"""The fast tracker and conn columns agree with the frozen reference (``flows/ref``) on any input.

The tracker's speed work (timer deadlines kept beside the state, ended connections written
column by column, the key index probed once) must not change a single conn row. Hypothesis drives
both with crafted packet columns from tiny value sets, so keys collide, roles flip, timers fire
between and inside batches, tunnels nest, and the state and output buffers grow; every batch's
per-row results and every ended connection must match, and so must the conn.log columns built
from them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.ref import conn_columns as RC
from flows.ref import connections as RN
from flows.ref import tracker as RT
from mamori.config import Settings
from mamori.flows import conn_columns as CC
from mamori.flows import connections as CN
from mamori.flows import tracker as T
from mamori.sensors.pcap.decode import COLUMNS, PacketColumns

_V4 = 0xFFFF << 32
_ADDRS = [(0, _V4 | 0x0A000001), (0, _V4 | 0x0A000002), (0, _V4 | 0xC0000250), (0, (1 << 48) - 1)]
_ADDRS += [(0x20010DB800000000, 1), (0x20010DB800000000, 2)]
_STEPS = [0, 1_000, 1_000_000, 1_000_000_000, 6_000_000_000, 11_000_000_000, 400_000_000_000]
_SEQS = [0, 1, 100, 101, 500, 501, 0xFFFFFFF0, 0x7FFFFFFF, 0x80000010]

_packet = st.fixed_dictionaries(
    {
        "step": st.sampled_from(_STEPS),
        "status": st.sampled_from([0] * 12 + [2, 3]),
        "tunnel": st.sampled_from([0] * 10 + [1, 3]),
        "proto": st.sampled_from([6, 6, 6, 17, 17, 1, 58, 47]),
        "src": st.integers(0, len(_ADDRS) - 1),
        "dst": st.integers(0, len(_ADDRS) - 1),
        "sport": st.sampled_from([0, 8, 53, 80, 128, 443, 3, 40000, 40001]),
        "dport": st.sampled_from([0, 8, 53, 80, 129, 443, 40000, 40001]),
        "flags": st.integers(0, 31),
        "seq": st.sampled_from(_SEQS),
        "ack": st.sampled_from(_SEQS),
        "win": st.sampled_from([0, 1000]),
        "pay_len": st.sampled_from([0, 0, 1, 10, 1400]),
        "cut": st.booleans(),
    }
)
_batches = st.lists(st.lists(_packet, max_size=40), min_size=1, max_size=5)


def _columns(packets: list[dict[str, int]], t0: int, r0: int) -> tuple[PacketColumns, ...]:
    """Decoder-shaped columns; a tunnelling row carries the next one (same record, depth + 1)."""
    n = len(packets)
    c = {name: np.zeros(n, dtype) for name, dtype in COLUMNS.items()}
    ts = np.zeros(n, np.int64)
    rec_no = np.zeros(n, np.int64)
    t, r = t0, r0
    for i, p in enumerate(packets):
        carried = i > 0 and packets[i - 1]["tunnel"] != 0
        if not carried:
            t += p["step"]
            r += 1
        ts[i], rec_no[i] = t, r
        c["parent"][i] = i - 1 if carried else -1
        c["rec"][i] = r - r0 - 1
        c["status"][i] = p["status"]
        c["tunnel"][i] = p["tunnel"] if i + 1 < n else 0
        c["proto"][i] = p["proto"]
        c["src_hi"][i], c["src_lo"][i] = _ADDRS[p["src"]]
        c["dst_hi"][i], c["dst_lo"][i] = _ADDRS[p["dst"]]
        for k in ("sport", "dport", "flags", "seq", "ack", "win", "pay_len"):
            c[k][i] = p[k]
        c["pay_cap"][i] = p["pay_len"] // 2 if p["cut"] else p["pay_len"]
        c["ip_len"][i] = 40 + p["pay_len"]
    return PacketColumns(c), ts, rec_no, t, r  # type: ignore[return-value]


# Columns of an ended connection's state that leave the tracker (the endpoints' are summed up in
# ``size``).
KEPT = list(range(T.C_EP))


Columns = dict[str, pa.Array]


def _ended_equal(
    a: RN.Ended | None, b: CN.Ended | None, kept: list[tuple[Columns, Columns]]
) -> None:
    if a is None or b is None:
        assert a is None and b is None
        return
    np.testing.assert_array_equal(a.state[:, KEPT], b.state[:, KEPT])
    np.testing.assert_array_equal(a.hist_len, b.hist_len)
    for i in range(a.hist_len.shape[0]):
        hl = a.hist_len[i]
        np.testing.assert_array_equal(a.hist[i, :hl], b.hist[i, :hl])
    np.testing.assert_array_equal(a.size, b.size)
    seed, source = b"seed", "x.pcap"
    nets = CC.network_table(("10.0.0.0/8", "2001:db8::/32"))
    want = RC.conn_columns(a.state, a.size, a.hist, a.hist_len, seed, nets, source)
    got = CC.conn_columns(b.state, b.size, b.hist, b.hist_len, seed, nets, source)
    want["tunnel_parents"] = RC.tunnel_parents(seed, a.state[:, RT.C_PARENT])
    got["tunnel_parents"] = CC.tunnel_parents(seed, b.state[:, T.C_PARENT])
    _columns_equal(want, got)
    kept.append((want, got))


def _columns_equal(want: Columns, got: Columns) -> None:
    assert list(want) == list(got)
    for name in want:
        assert got[name].equals(want[name]), name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_batches, st.sampled_from([2, 3, 64]))
def test_tracker_agrees_with_the_reference(batches: list[list[dict[str, int]]], cap: int) -> None:
    s = Settings()
    ref = RN.ConnTracker(s, capacity=cap, out_capacity=cap)
    new = CN.ConnTracker(s, capacity=cap, out_capacity=cap)
    t, r = 1_700_000_000 * 10**9, 0
    kept: list[tuple[Columns, Columns]] = []
    for packets in batches:
        pk, ts, rec_no, t, r = _columns(packets, t, r)
        want = ref.feed(pk, ts, rec_no)
        got = new.feed(pk, ts, rec_no)
        np.testing.assert_array_equal(want[0], got[0])
        np.testing.assert_array_equal(want[1], got[1])
        _ended_equal(ref.take(), new.take(), kept)
    ref.finish()
    new.finish()
    _ended_equal(ref.take(), new.take(), kept)
    # The columns must own their data: the tracker reuses its output buffers, and a sink may
    # hold the columns of several batches before it writes them.
    for want, got in kept:
        _columns_equal(want, got)
