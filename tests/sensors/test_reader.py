"""The capture reader: every format it claims, buffer boundaries, and damage handling.

Captures are written by ``support.pcap_writer`` (independent of the reader) so every expected
record is known by construction. Damage must cost exactly the damaged record and what follows it,
reported once, as one line naming the file and the 1-based record number: the records before it
are evidence and must never be lost.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.sensors.pcap import decode as D
from mamori.sensors.pcap.reader import CaptureError, CaptureProblem, PcapReader
from support.pcap_writer import (
    PcapngWriter,
    Rec,
    classic_header,
    classic_pcap,
    classic_record,
    ether,
    ip4,
    ipv4,
    tcp,
    ticks_to_ns,
)

SMALL = 1 << 16  # the reader's minimum buffer


@dataclass(frozen=True, slots=True)
class Got:
    """One record as read, copied out of the reusable buffer."""

    ts_ns: int
    data: bytes
    wirelen: int
    linktype: int
    file_off: int


def read(path: Path, batch_bytes: int = 64 << 20) -> tuple[list[Got], PcapReader]:
    """All records of a capture; each batch is copied before the reader reuses its buffer."""
    reader = PcapReader(path, batch_bytes)
    out: list[Got] = []
    for batch in reader:
        assert batch.first_record == len(out)
        for i in range(len(batch)):
            off = int(batch.data_off[i])
            out.append(
                Got(
                    int(batch.ts_ns[i]),
                    bytes(batch.buf[off : off + int(batch.caplen[i])]),
                    int(batch.wirelen[i]),
                    int(batch.linktype[i]),
                    int(batch.file_off[i]),
                )
            )
    assert reader.records == len(out)
    return out, reader


def write(tmp_path: Path, data: bytes, name: str = "c.pcap") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def frame(k: int, size: int | None = None) -> bytes:
    """A distinct, decodable frame; ``size`` pads its payload to that many bytes in total."""
    payload = k.to_bytes(4, "big")
    if size is not None:
        payload += bytes((k + j) & 0xFF for j in range(max(0, size - 58)))
    return ether(0x0800, ipv4(ip4("10.0.0.1"), ip4("10.0.0.2"), 6, tcp(k & 0xFFFF, 80, payload)))


def assert_one_line(problem: CaptureProblem | None, path: Path, record: int, *words: str) -> None:
    assert problem is not None
    text = str(problem)
    assert "\n" not in text and "\r" not in text
    assert text.startswith(f"{path}: record {record}: ")
    assert problem.path == str(path) and problem.record == record
    for w in words:
        assert w in problem.reason, (w, problem.reason)


# ---------------------------------------------------------------------------------------- formats

# Timestamps chosen to expose any rounding: sub-microsecond digits, second boundaries, 2038+.
TIMES = [
    1_700_000_000_123_456_789,
    1_700_000_000_999_999_999,
    1_700_000_001_000_000_000,
    4_102_444_800_000_000_001,
]


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanos", [False, True])
def test_classic_byte_orders_and_resolutions(tmp_path: Path, big_endian: bool, nanos: bool) -> None:
    recs = [Rec(ts, frame(k, 60 + 37 * k), wirelen=1000 + k) for k, ts in enumerate(TIMES)]
    path = write(tmp_path, classic_pcap(recs, 1, big_endian=big_endian, nanos=nanos, snaplen=9000))
    got, reader = read(path)
    assert reader.format == "pcap" and reader.problem is None
    assert [g.data for g in got] == [r.data for r in recs]
    want_ts = [r.ts_ns if nanos else r.ts_ns // 1000 * 1000 for r in recs]
    assert [g.ts_ns for g in got] == want_ts  # exact to the ns, no float on the way
    assert [g.wirelen for g in got] == [1000 + k for k in range(len(recs))]
    assert {g.linktype for g in got} == {1}
    offs = [24]
    for r in recs[:-1]:
        offs.append(offs[-1] + 16 + len(r.data))
    assert [g.file_off for g in got] == offs
    assert reader.bytes_read == path.stat().st_size


def test_classic_snaplen_column(tmp_path: Path) -> None:
    path = write(tmp_path, classic_pcap([Rec(1, frame(1))], 1, snaplen=96))
    batches = [b.snaplen.tolist() for b in PcapReader(path)]
    assert batches == [[96]]


def multi_interface_pcapng() -> tuple[bytes, list[tuple[int, bytes, int | None, int]]]:
    """Two sections (little- then big-endian), five interfaces, EPB/SPB and skipped blocks.

    Returns the file and the expected (ts_ns, data, wirelen, linktype) of each packet.
    """
    w = PcapngWriter().section()
    ifaces = [(1, None), (101, 9), (113, 0x80 | 20), (228, 6), (229, 0x80 | 40)]
    for lt, res in ifaces:
        w.interface(lt, tsresol=res)
    w.other(4, b"\x01\x00\x08\x00" + ip4("10.0.0.1") + b"a.b\0" + b"\0\0\0\0")  # name resolution
    want = []
    ticks = [
        1_700_000_000_123_456,
        1_700_000_000_123_456_789,
        1_782_570_041_483_129,
        17,
        (1 << 63) - 5,
    ]
    for k in range(15):
        i = k % len(ifaces)
        data = frame(k, 60 + k)
        t = ticks[i] + k
        w.epb(i, t, data, wirelen=len(data) + k)
        want.append((ticks_to_ns(t, ifaces[i][1]), data, len(data) + k, ifaces[i][0]))
    w.other(5, b"\0" * 12)  # interface statistics
    w.other(0x40000BAD, b"custom block")
    # A second section, other byte order: a new interface list whose interface 0 is SLL2 in ms.
    w.section(big_endian=True).interface(276, tsresol=3, snaplen=70).interface(1)
    for k in range(4):
        data = frame(100 + k, 80)
        w.epb(1, 1000 + k, data)
        want.append(((1000 + k) * 1000, data, len(data), 1))
        w.spb(data)  # interface 0's snaplen (70) cuts it; SPBs carry no timestamp
        want.append((0, data[:70], len(data), 276))
    w.spb(data[:13], wirelen=13)  # 13 bytes, padded to 16 in the block: padding is not data
    want.append((0, data[:13], 13, 276))
    return w.bytes(), want


def test_pcapng_sections_interfaces_resolutions_and_spb(tmp_path: Path) -> None:
    data, want = multi_interface_pcapng()
    got, reader = read(write(tmp_path, data, "c.pcapng"))
    assert reader.format == "pcapng" and reader.problem is None
    assert [(g.ts_ns, g.data, g.wirelen, g.linktype) for g in got] == want


def test_pcapng_resolution_reference_values() -> None:
    """The reference conversion itself, on hand-computed values (guards the test oracle)."""
    assert ticks_to_ns(1_500_000, None) == 1_500_000_000
    assert ticks_to_ns(3, 9) == 3
    assert ticks_to_ns(1 << 20, 0x80 | 20) == 1_000_000_000
    assert ticks_to_ns(3, 0x80 | 1) == 1_500_000_000
    assert ticks_to_ns(1, 0x80 | 30) == 0  # 0.93 ns floors to 0


@pytest.mark.parametrize(
    ("tsresol", "ticks"),
    [
        (0, 1_700_000_000),  # seconds
        (3, 1_700_000_000_123),
        (12, 1_700_000_000_123_456_789_012 % (1 << 63)),  # picoseconds
        (0x80 | 10, (1_700_000_000 << 10) + 1023),
        (0x80 | 32, (1_700_000_000 << 32) % (1 << 63) + 0xFFFFFFFF),
        (0x80 | 32, (2_200_000_000 << 32) + 0x80000000),  # after 2038: top bit set
        (0x80 | 50, (1 << 64) - 1),
        (6, (1 << 63) + 1),
    ],
)
def test_pcapng_tsresol_exact(tmp_path: Path, tsresol: int, ticks: int) -> None:
    data = PcapngWriter().section().interface(1, tsresol=tsresol).epb(0, ticks, frame(1)).bytes()
    got, reader = read(write(tmp_path, data, "c.pcapng"))
    assert reader.problem is None
    want = ticks_to_ns(ticks, tsresol)
    assert [g.ts_ns % (1 << 64) for g in got] == [want % (1 << 64)]  # int64 ns wrap after 2262
    if want < 1 << 63:
        assert got[0].ts_ns == want


@pytest.mark.parametrize("tsresol", [0x7F, 0x80 | 60, 0xFF, 28])
def test_pcapng_impossible_tsresol_is_a_problem_not_a_crash(tmp_path: Path, tsresol: int) -> None:
    """Regression: ``if_tsresol`` 0x7f overflowed int64 in the reader (OverflowError)."""
    w = PcapngWriter().section().interface(1).epb(0, 5, frame(1))
    w.interface(1, tsresol=tsresol).epb(1, 5, frame(2))
    path = write(tmp_path, w.bytes(), "c.pcapng")
    got, reader = read(path)
    assert [g.data for g in got] == [frame(1)]
    assert_one_line(reader.problem, path, 2, "interface block")


@pytest.mark.parametrize("name", ["c.pcap", "c.pcapng"])
def test_gzip_gives_the_same_records(tmp_path: Path, name: str) -> None:
    if name.endswith("ng"):
        raw, _ = multi_interface_pcapng()
    else:
        raw = classic_pcap([Rec(t, frame(k)) for k, t in enumerate(TIMES)], nanos=True)
    plain, _ = read(write(tmp_path, raw, name))
    zipped, reader = read(write(tmp_path, gzip.compress(raw), name + ".gz"))
    assert reader.problem is None and len(plain) > 3
    assert zipped == plain
    assert reader.bytes_read == len(raw)  # counted in uncompressed bytes, like file_off


def many_records(n: int = 3000) -> list[Rec]:
    """Sizes cycling through 0..1500 bytes plus two jumbo records larger than the small buffer."""
    recs = [Rec(1_000_000_000 * k + k, frame(k, (k * 97) % 1501)) for k in range(n)]
    recs[1234] = Rec(7, frame(1234) + bytes(range(256)) * 400)  # 100 KiB: bigger than SMALL
    recs[2001] = Rec(8, frame(2001) + b"\xa5" * 200_000)
    return recs


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_tiny_buffer_reads_the_same_records(tmp_path: Path, fmt: str) -> None:
    """Records cut by the buffer's end (and ones larger than it) are carried over, not lost."""
    recs = many_records()
    if fmt == "pcap":
        raw = classic_pcap(recs, nanos=True)
    else:
        w = PcapngWriter().section().interface(1, tsresol=9)
        for r in recs:
            w.epb(0, r.ts_ns, r.data)
        raw = w.bytes()
    path = write(tmp_path, raw, f"c.{fmt}")
    small, r_small = read(path, SMALL)
    large, r_large = read(path)
    assert r_small.problem is None and r_large.problem is None
    assert len(large) == len(recs)
    assert [g.data for g in large] == [r.data for r in recs]
    assert small == large


def test_tiny_buffer_on_shared_captures(data_dir: Path) -> None:
    captures = sorted(
        (p for p in data_dir.rglob("*") if p.suffix in (".pcap", ".pcapng")),
        key=lambda p: p.stat().st_size,
    )
    biggest = [p for p in captures if p.stat().st_size > 3 * SMALL][-4:]
    assert len(biggest) == 4
    for path in biggest:
        small, r_small = read(path, SMALL)
        large, r_large = read(path)
        assert small == large and len(large) > 100, path
        assert r_small.problem == r_large.problem


# ---------------------------------------------------------------------------------------- damage


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, b"")
    with pytest.raises(CaptureError, match="empty"):
        read(path)


@pytest.mark.parametrize("data", [b"GIF89a\x01\x00", b"\x00", b"<html>hello</html>" * 3])
def test_not_a_capture_names_the_magic(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, data)
    with pytest.raises(CaptureError) as err:
        read(path)
    text = str(err.value)
    assert str(path) in text and data[:4].hex() in text and "\n" not in text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot open"):
        read(tmp_path / "nope.pcap")


def test_classic_header_cut_short(tmp_path: Path) -> None:
    path = write(tmp_path, classic_header(1)[:20])
    with pytest.raises(CaptureError, match="20 of 24"):
        read(path)


def test_header_only_capture_is_empty_not_damaged(tmp_path: Path) -> None:
    got, reader = read(write(tmp_path, classic_header(1)))
    assert got == [] and reader.problem is None


@pytest.mark.parametrize("cut", [1, 15, 16, 17, 40])
def test_truncated_last_record(tmp_path: Path, cut: int) -> None:
    recs = [Rec(k, frame(k, 60)) for k in range(5)]
    raw = classic_pcap(recs)
    path = write(tmp_path, raw[: len(raw) - (16 + 60) + cut])  # last record: cut bytes remain
    got, reader = read(path)
    assert [g.data for g in got] == [r.data for r in recs[:4]]
    assert_one_line(reader.problem, path, 5, "truncated", f"{cut} bytes")


@pytest.mark.parametrize("batch_bytes", [SMALL, 64 << 20])
def test_corrupt_record_header_mid_file(tmp_path: Path, batch_bytes: int) -> None:
    recs = [Rec(k, frame(k, 1000)) for k in range(200)]
    raw = bytearray(classic_pcap(recs))
    at = 24 + 150 * (16 + 1000)  # header of record 151
    raw[at + 8 : at + 12] = (0x7FFFFF00).to_bytes(4, "little")
    path = write(tmp_path, bytes(raw))
    got, reader = read(path, batch_bytes)
    assert [g.data for g in got] == [r.data for r in recs[:150]]
    assert_one_line(
        reader.problem, path, 151, "corrupt record header", f"byte {at}", str(0x7FFFFF00)
    )


def pcapng_of(n: int) -> tuple[bytes, list[int]]:
    """A pcapng file of ``n`` EPBs and the file offset of each EPB."""
    w = PcapngWriter().section().interface(1)
    offs = []
    for k in range(n):
        offs.append(len(w.bytes()))
        w.epb(0, k, frame(k, 100))
    return w.bytes(), offs


@pytest.mark.parametrize("keep", [4, 12, 50])
def test_truncated_pcapng_block(tmp_path: Path, keep: int) -> None:
    raw, offs = pcapng_of(6)
    path = write(tmp_path, raw[: offs[5] + keep], "c.pcapng")
    got, reader = read(path)
    assert [g.data for g in got] == [frame(k, 100) for k in range(5)]
    assert_one_line(reader.problem, path, 6, "truncated", f"{keep} bytes")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        (4, 7, ("corrupt pcapng block",)),  # block length not a multiple of 4
        (4, 0xFFFFFFF0, ("corrupt pcapng block",)),  # absurd block length
        (8, 9, ("corrupt pcapng block",)),  # interface that does not exist
        (20, 5000, ("corrupt pcapng block",)),  # captured length beyond the block
    ],
)
def test_corrupt_pcapng_block_mid_file(
    tmp_path: Path, field: int, value: int, words: tuple[str, ...]
) -> None:
    raw, offs = pcapng_of(6)
    buf = bytearray(raw)
    buf[offs[3] + field : offs[3] + field + 4] = value.to_bytes(4, "little")
    path = write(tmp_path, bytes(buf), "c.pcapng")
    got, reader = read(path)
    assert [g.data for g in got] == [frame(k, 100) for k in range(3)]
    assert_one_line(reader.problem, path, 4, *words, f"byte {offs[3]}")


@pytest.mark.parametrize(
    ("block", "words"),
    [
        (
            b"\x0a\x0d\x0d\x0a\x1c\0\0\0\x01\x02\x03\x04" + b"\0" * 12 + b"\x1c\0\0\0",
            ("byte-order",),
        ),
        (b"\x0a\x0d\x0d\x0a\0\0\0\0\x4d\x3c\x2b\x1a" + b"\0" * 12, ("section header",)),
        (b"\x01\0\0\0\x0c\0\0\0\x0c\0\0\0", ("interface block",)),  # IDB without its fields
        (b"\x03\0\0\0\x0c\0\0\0\x0c\0\0\0", ("corrupt pcapng block",)),  # SPB without length
        (
            b"\x02\0\0\0\x10\0\0\0" + b"\0" * 4 + b"\x10\0\0\0",
            ("corrupt pcapng block",),
        ),  # short PB
    ],
)
def test_malformed_pcapng_blocks_after_good_records(
    tmp_path: Path, block: bytes, words: tuple[str, ...]
) -> None:
    """Regression: a 12-byte IDB crashed with struct.error, a zero-length section header looped."""
    raw, _ = pcapng_of(3)
    path = write(tmp_path, raw + block + raw[-200:], "c.pcapng")
    got, reader = read(path)
    assert [g.data for g in got] == [frame(k, 100) for k in range(3)]
    assert_one_line(reader.problem, path, 4, *words)


def test_unknown_link_type_keeps_records(tmp_path: Path) -> None:
    recs = [Rec(k, frame(k)) for k in range(3)]
    path = write(tmp_path, classic_pcap(recs, linktype=147))
    statuses: list[int] = []
    n = 0
    reader = PcapReader(path)
    for batch in reader:
        assert batch.linktype.tolist() == [147] * len(batch)
        statuses += D.decode(batch)["status"].tolist()
        n += len(batch)
    assert n == 3 and reader.problem is None
    assert statuses == [D.UNKNOWN_LINK] * 3


def test_snaplen_cut_packets(tmp_path: Path) -> None:
    full = [frame(k, 1000) for k in range(4)]
    cuts = [64, 54, 30, 10]  # in payload, at the payload, in the IP header, in Ethernet
    recs = [Rec(k, f[:c], wirelen=len(f)) for k, (f, c) in enumerate(zip(full, cuts, strict=True))]
    path = write(tmp_path, classic_pcap(recs, snaplen=64))
    reader = PcapReader(path)
    for batch in reader:
        assert batch.caplen.tolist() == cuts
        assert batch.wirelen.tolist() == [len(f) for f in full]
        cols = D.decode(batch)
        assert cols["status"].tolist() == [D.OK, D.OK, D.TRUNCATED, D.TRUNCATED]
        assert cols["pay_len"][:2].tolist() == [1000 - 54, 1000 - 54]
        assert cols["pay_cap"].tolist() == [10, 0, 0, 0]
    assert reader.records == 4 and reader.problem is None


def test_wire_length_below_captured_length_is_raised(tmp_path: Path) -> None:
    got, _ = read(write(tmp_path, classic_pcap([Rec(1, frame(1), wirelen=3)])))
    assert got[0].wirelen == len(frame(1))


@pytest.mark.parametrize("batch_bytes", [SMALL, 64 << 20])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_gzip_names_the_first_lost_record(
    tmp_path: Path, keep: float, batch_bytes: int
) -> None:
    """Regression: a read error named the record reached by the *walk* when the buffer was filled
    (the first record of the buffer), not the first record actually lost."""
    recs = [Rec(k, frame(k, 300)) for k in range(2000)]
    raw = classic_pcap(recs)
    zipped = gzip.compress(raw, compresslevel=1)
    path = write(tmp_path, zipped[: int(len(zipped) * keep)], "c.pcap.gz")
    got, reader = read(path, batch_bytes)
    assert 0 < len(got) < len(recs)
    assert [g.data for g in got] == [r.data for r in recs[: len(got)]]
    assert_one_line(reader.problem, path, len(got) + 1)
    assert "end-of-stream" in reader.problem.reason or "truncated" in reader.problem.reason


def test_corrupt_gzip_stream_is_a_problem(tmp_path: Path) -> None:
    raw = classic_pcap([Rec(k, frame(k, 300)) for k in range(500)])
    zipped = bytearray(gzip.compress(raw))
    for k in range(len(zipped) // 2, len(zipped) // 2 + 64):
        zipped[k] ^= 0x5A
    path = write(tmp_path, bytes(zipped), "c.pcap.gz")
    got, reader = read(path)
    assert reader.problem is not None and "\n" not in str(reader.problem)
    assert len(got) < 500


def test_gzip_garbage_in_header(tmp_path: Path) -> None:
    """A file that only looks gzip-compressed is not a capture, not a crash."""
    path = write(tmp_path, b"\x1f\x8b" + b"\xff" * 40, "c.pcap.gz")
    with pytest.raises(CaptureError, match="cannot read"):
        read(path)


# ------------------------------------------------------------------------------ property tests

records_st = st.lists(
    st.builds(
        Rec,
        ts_ns=st.integers(0, (1 << 32) * 1_000_000_000 - 1),
        data=st.binary(max_size=300),
        wirelen=st.none() | st.integers(300, 70000),
    ),
    max_size=40,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=records_st, big_endian=st.booleans(), nanos=st.booleans(), linktype=st.integers(0, 300)
)
def test_random_classic_round_trip(
    tmp_path: Path, records: list[Rec], big_endian: bool, nanos: bool, linktype: int
) -> None:
    path = write(tmp_path, classic_pcap(records, linktype, big_endian=big_endian, nanos=nanos))
    got, reader = read(path, SMALL)
    assert reader.problem is None
    assert len(got) == len(records)
    for g, r in zip(got, records, strict=True):
        assert g.ts_ns == (r.ts_ns if nanos else r.ts_ns // 1000 * 1000)
        assert g.data == r.data and g.wirelen == r.orig and g.linktype == linktype


RESOLUTIONS = [None, 0, 3, 6, 9, 12, 0x80 | 1, 0x80 | 20, 0x80 | 32]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    resolutions=st.lists(st.sampled_from(RESOLUTIONS), min_size=1, max_size=4),
    packets=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, (1 << 64) - 1), st.binary(max_size=200)),
        max_size=30,
    ),
    big_endian=st.booleans(),
)
def test_random_pcapng_round_trip(
    tmp_path: Path,
    resolutions: list[int | None],
    packets: list[tuple[int, int, bytes]],
    big_endian: bool,
) -> None:
    w = PcapngWriter().section(big_endian=big_endian)
    for k, res in enumerate(resolutions):
        w.interface(k + 1, tsresol=res)
    want = []
    for i, ticks, data in packets:
        i %= len(resolutions)
        w.epb(i, ticks, data)
        want.append((ticks_to_ns(ticks, resolutions[i]) % (1 << 64), data, i + 1))
    got, reader = read(write(tmp_path, w.bytes(), "c.pcapng"), SMALL)
    assert reader.problem is None
    # ns past 2262 wrap in int64; compare modulo 2**64 so the check is about exactness.
    assert [(g.ts_ns % (1 << 64), g.data, g.linktype) for g in got] == want


@st.composite
def capture_and_cut(draw: st.DrawFn) -> tuple[bytes, set[int], list[int], list[bytes], int, bool]:
    """A valid capture, its block/record boundaries, where each packet ends, and a cut."""
    datas = draw(st.lists(st.binary(max_size=120), min_size=1, max_size=20))
    ng = draw(st.booleans())
    ends = []
    if ng:
        w = PcapngWriter().section(big_endian=draw(st.booleans()))
        bounds = {len(w.bytes())}
        w.interface(1)
        bounds.add(len(w.bytes()))
        for k, d in enumerate(datas):
            if draw(st.integers(0, 4)) == 0:
                w.other(4)  # a non-packet block between packets
                bounds.add(len(w.bytes()))
            w.epb(0, k, d)
            ends.append(len(w.bytes()))
        raw = w.bytes()
    else:
        big = draw(st.booleans())
        raw = classic_header(1, big_endian=big)
        bounds = {len(raw)}
        for k, d in enumerate(datas):
            raw += classic_record(Rec(k, d), big_endian=big)
            ends.append(len(raw))
    return raw, bounds | set(ends), ends, datas, draw(st.integers(0, len(raw))), ng


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=capture_and_cut())
def test_truncation_keeps_exactly_the_whole_records(
    tmp_path: Path, case: tuple[bytes, set[int], list[int], list[bytes], int, bool]
) -> None:
    raw, bounds, ends, datas, cut, ng = case
    path = write(tmp_path, raw[:cut], "c.pcapng" if ng else "c.pcap")
    if cut < (4 if ng else 24):  # not even a file header (magic)
        with pytest.raises(CaptureError):
            read(path)
        return
    got, reader = read(path, SMALL)
    whole = sum(1 for e in ends if e <= cut)
    assert [g.data for g in got] == datas[:whole]
    if cut in bounds:
        # A cut exactly after a block or record is indistinguishable from a shorter file.
        assert reader.problem is None
    else:
        assert reader.problem is not None, f"cut at {cut} inside a block went unreported"
        assert reader.problem.record == whole + 1
        assert "truncated" in reader.problem.reason and "\n" not in str(reader.problem)


def test_batches_are_bounded(tmp_path: Path) -> None:
    """Memory stays flat: a capture far larger than the buffer arrives in many batches."""
    recs = [Rec(k, frame(k, 1400)) for k in range(400)]
    path = write(tmp_path, classic_pcap(recs))
    reader = PcapReader(path, SMALL)
    sizes = []
    for batch in reader:
        assert batch.buf.shape[0] == SMALL
        sizes.append(len(batch))
    assert sum(sizes) == 400 and len(sizes) >= 8
    assert np.all(np.array(sizes) <= SMALL // (16 + 1400) + 1)


def test_u32_header_fields_beyond_int32(tmp_path: Path) -> None:
    """Regressions found by the fuzz target: a snaplen of 2**32-1 in the file header crashed with
    OverflowError, and an original length of 2**32-1 wrapped to a negative int32 wirelen."""
    raw = bytearray(classic_pcap([Rec(1, frame(1), wirelen=0xFFFFFFFF)], snaplen=0xFFFFFFF0))
    path = write(tmp_path, bytes(raw))
    reader = PcapReader(path)
    for batch in reader:
        assert batch.snaplen.tolist() == [0x7FFFFFFF]
        assert batch.wirelen.tolist() == [0x7FFFFFFF]
    assert reader.records == 1 and reader.problem is None
    ng = PcapngWriter().section().interface(1, snaplen=0xFFFFFFFF).epb(0, 1, frame(1)).bytes()
    got, reader = read(write(tmp_path, ng, "c.pcapng"))
    assert [g.data for g in got] == [frame(1)] and reader.problem is None
