"""Tunnelled connections split over workers as one process sees them.

A VXLAN mirror (AWS traffic mirroring, a VTEP) sends the two directions of a mirrored flow in two
UDP connections: each direction's outer source port is a hash of the inner headers as that
direction has them. A flow can also move from one GRE tunnel to another. Workers that followed
the outer packet split such inner connections in two (half-open halves, lost HTTP and DNS rows);
here every worker count writes what one process writes, and the inner connections of a mirror are
exactly those of the plain capture it mirrors.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flows.test_workers import _canonical, _sharded
from mamori.config import Settings
from mamori.flows.pipeline import tables_of
from support.pcap_writer import Rec, classic_pcap, ether, gre, ip4, ip6, ipv4, ipv6, udp, vxlan

PLAIN = "zeek-btest/Traces/wikipedia.pcap"  # DNS, HTTP, TCP handshakes and teardowns


def _frames(path: Path) -> Iterator[tuple[int, bytes]]:
    """(time in ns, frame) of a classic little-endian microsecond capture, read here so the
    input does not depend on the reader under test."""
    data = path.read_bytes()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    at = 24
    while at + 16 <= len(data):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", data, at)
        yield sec * 1_000_000_000 + usec * 1000, data[at + 16 : at + 16 + caplen]
        at += 16 + caplen


def _direction_port(frame: bytes) -> int:
    """A VTEP's source port: a hash of the inner IPv4 addresses and ports in this direction."""
    return 49152 + zlib.crc32(frame[26:38]) % 16384


def vxlan_mirror(plain: Path, out: Path, *, v6: bool) -> Path:
    recs = []
    for ts, frame in _frames(plain):
        carried = udp(_direction_port(frame), 4789, vxlan(7, frame))
        if v6:  # addresses whose high halves are over 2**63: the shard hash reads them unsigned
            outer = ether(0x86DD, ipv6(ip6("fd00::a"), ip6("fd00::14"), 17, carried))
        else:
            outer = ether(0x0800, ipv4(ip4("172.31.0.10"), ip4("172.31.0.20"), 17, carried))
        recs.append(Rec(ts, outer))
    out.write_bytes(classic_pcap(recs))
    return out


def gre_failover(plain: Path, out: Path) -> Path:
    """Every frame bridged over GRE; halfway through, the tunnel moves to other endpoints."""
    frames = list(_frames(plain))
    recs = []
    for i, (ts, frame) in enumerate(frames):
        a, b = ("10.1.1.1", "10.2.2.2") if i < len(frames) // 2 else ("10.3.3.3", "10.4.4.4")
        if frame[26:30] > frame[30:34]:  # one direction each way, as two routers send them
            a, b = b, a
        recs.append(Rec(ts, ether(0x0800, ipv4(ip4(a), ip4(b), 47, gre(0x6558, frame)))))
    out.write_bytes(classic_pcap(recs))
    return out


BUILDS = {
    "vxlan-v4": lambda plain, out: vxlan_mirror(plain, out, v6=False),
    "vxlan-v6": lambda plain, out: vxlan_mirror(plain, out, v6=True),
    "gre-failover": gre_failover,
}


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.parametrize("n", [2, 3])
def test_shards_write_what_one_process_writes(
    data_dir: Path, tmp_path: Path, build: str, n: int
) -> None:
    path = BUILDS[build](data_dir / PLAIN, tmp_path / f"{build}.pcap")
    settings = Settings(batch_bytes=1 << 16)  # many batches: state must cross their edges
    whole, _ = tables_of([path], settings)
    split = _sharded(path, n, settings)
    assert set(whole) == {"conn", "dns", "http"}
    assert set(split) == set(whole)
    for table in whole:
        assert _canonical(split[table]) == _canonical(whole[table]), table


# Columns that name the capture or a connection's place in it, not what the traffic was.
WHERE = {"uid", "tunnel_parents", "source", "first_record", "last_record"}


def _records(table: pa.Table) -> list[dict[str, object]]:
    return _canonical(table.drop_columns([c for c in table.column_names if c in WHERE]))


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_the_inner_connections_are_the_plain_captures(
    data_dir: Path, tmp_path: Path, build: str
) -> None:
    plain = data_dir / PLAIN
    path = BUILDS[build](plain, tmp_path / f"{build}.pcap")
    settings = Settings(batch_bytes=1 << 16)
    want, _ = tables_of([plain], settings)
    got = _sharded(path, 2, settings)
    conn = got["conn"]
    # The carriers: VXLAN's UDP connections (GRE opens none).
    outer = pc.and_(pc.equal(conn["proto"], "udp"), pc.equal(conn["resp_p"], 4789))
    carriers = conn.filter(outer)
    carried = conn.filter(pc.invert(outer))
    if build == "gre-failover":
        assert carriers.num_rows == 0
        assert carried["tunnel_parents"].null_count == carried.num_rows
    else:  # one per direction of each mirrored flow, and each carried one names its first
        ports = {_direction_port(frame) for _, frame in _frames(plain)}
        assert sorted(carriers["orig_p"].to_pylist()) == sorted(ports)
        parents = pc.list_flatten(carried["tunnel_parents"]).to_pylist()
        assert len(parents) == carried.num_rows
        assert set(parents) <= set(carriers["uid"].to_pylist())
    assert _records(carried) == _records(want["conn"])
    for table in ("dns", "http"):
        assert _records(got[table]) == _records(want[table]), table
