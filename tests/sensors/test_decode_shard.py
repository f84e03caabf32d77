"""Decoding one worker's shard: exactly the rows of a full decode that the worker can use.

A worker decoding with ``shard=(k, n)`` drops the rows of plain packets (one complete, untunnelled
row) that hash to another worker, but for UDP on a tunnel port, which every worker tracks; every
other row, and the batch's last record, is kept as the full decode writes it. Checked on real captures rich in tunnels and fragments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.flows.shards import shard_of
from mamori.sensors.pcap.decode import COLUMNS, OK, TUN_NONE, PacketColumns, decode
from mamori.sensors.pcap.reader import PcapReader, RecordBatch
from sensors.test_decode import batch_of, frames
from support.pcap_writer import ether, ip4, ipv4, udp

TUNNEL_PORTS = (4789, 3544, 2152)

CAPTURES = [
    "zeek-btest/Traces/tunnels/gre-within-gre.pcap",
    "zeek-btest/Traces/tunnels/teredo-udp-in-udp.pcap",
    "zeek-btest/Traces/tunnels/vxlan-encapsulated-igmp-v2.pcap",
    "zeek-btest/Traces/wikipedia.pcap",
    "zeek-btest/Traces/pppoe-over-qinq.pcap",
    "zeek-btest/Traces/dns53.pcap",
    "zeek-btest/Traces/tunnels/gtp/gtp1_gn_normal_incl_fragmentation.pcap",
    "pcaps-ddos-stopddos/amp.dns.RRSIG.fragmented.pcap",
]


def expected_rows(full: PacketColumns, k: int, n: int, records: int) -> np.ndarray:
    """Rows of the full decode the worker keeps: all but other workers' plain packets, except
    UDP on a VXLAN, Teredo or GTP-U port (stated here, not imported)."""
    rows = len(full)
    has_child = np.zeros(rows, np.bool_)
    parent = full["parent"]
    has_child[parent[parent >= 0]] = True
    plain = (
        (full["parent"] < 0)
        & (full["status"] == OK)
        & (full["tunnel"] == TUN_NONE)
        & ~has_child
        & (full["rec"] != records - 1)
        & ~(
            (full["proto"] == 17)
            & (np.isin(full["sport"], TUNNEL_PORTS) | np.isin(full["dport"], TUNNEL_PORTS))
        )
    )
    return np.flatnonzero(~(plain & (shard_of(full, n) != k)))


def check_shards(batch: RecordBatch, n: int) -> None:
    """Every worker's decode is the full decode's rows it keeps; together they keep them all."""
    full = decode(batch)
    kept_by = np.zeros(len(full), np.int64)
    for k in range(n):
        part = decode(batch, (k, n))
        want = expected_rows(full, k, n, len(batch))
        kept_by[want] += 1
        assert len(part) == want.shape[0]
        for name in COLUMNS:
            got, exp = part[name], full[name][want]
            if name == "parent":  # parents point at rows, which moved
                exp = np.where(exp >= 0, np.searchsorted(want, exp), exp)
            assert np.array_equal(got, exp), name
    assert (kept_by >= 1).all()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=12), st.integers(2, 4))
def test_random_frames_split_like_the_full_decode(items: list[tuple[bytes, int]], n: int) -> None:
    """Random frames (every link type, tunnels, fragments, damage, cuts): the same property."""
    check_shards(batch_of([f for f, _ in items], [lt for _, lt in items]), n)


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("n", [2, 3])
def test_shard_decode_is_the_full_decode_without_other_plain_packets(
    data_dir: Path, name: str, n: int
) -> None:
    path = data_dir / name
    if not path.exists():
        pytest.fail(f"missing shared capture {path}")
    seen = 0
    for batch in PcapReader(path, 1 << 16):
        check_shards(batch, n)
        seen += len(batch)
    assert seen > 0


@pytest.mark.parametrize("port", TUNNEL_PORTS)
def test_udp_on_a_tunnel_port_is_decoded_by_every_worker(port: int) -> None:
    """UDP on a tunnel port the decoder does not peel (a VXLAN header without its I flag, a
    short Teredo or GTP payload) is still decoded by every worker: they all track its
    connection, as they track the ones that do carry tunnels."""
    frames_ = [
        ether(0x0800, ipv4(ip4(f"10.0.{i}.1"), ip4("10.9.9.9"), 17, udp(40000 + i, port, b"\0\0")))
        for i in range(40)
    ]
    batch = batch_of([*frames_, frames_[0]], 1)  # the last record is always kept: repeat one
    full = decode(batch)
    for k in range(2):
        assert len(decode(batch, (k, 2))) == len(full) == 41
    check_shards(batch, 2)
