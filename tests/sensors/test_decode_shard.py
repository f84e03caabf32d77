"""Decoding one worker's shard: exactly the rows of a full decode that the worker can use.

A worker decoding with ``shard=(k, n)`` drops the rows of plain packets (one complete, untunnelled
row) that hash to another worker; every other row, and the batch's last record, is kept as the
full decode writes it. Checked on real captures rich in tunnels and fragments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mamori.flows.shards import shard_of
from mamori.sensors.pcap.decode import COLUMNS, OK, TUN_NONE, PacketColumns, decode
from mamori.sensors.pcap.reader import PcapReader

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
    """Rows of the full decode the worker keeps: all but other workers' plain packets."""
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
    )
    return np.flatnonzero(~(plain & (shard_of(full, n) != k)))


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
        full = decode(batch)
        kept_by = np.zeros(len(full), np.int64)
        for k in range(n):
            part = decode(batch, (k, n))
            want = expected_rows(full, k, n, len(batch))
            kept_by[want] += 1
            assert len(part) == want.shape[0]
            for name_ in COLUMNS:
                got, exp = part[name_], full[name_][want]
                if name_ == "parent":  # parents point at rows, which moved
                    exp = np.where(exp >= 0, np.searchsorted(want, exp), exp)
                assert np.array_equal(got, exp), name_
        # Every row of the full decode is written by at least one worker.
        assert (kept_by >= 1).all()
        seen += len(batch)
    assert seen > 0
