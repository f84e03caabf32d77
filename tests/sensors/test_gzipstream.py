"""gzip captures: every packet before a cut or damage is kept, and the stream reads as gzip does.

The expected records of a cut file are computed independently: every whole record in what
``zlib`` can inflate from the kept bytes.
"""

from __future__ import annotations

import gzip
import io
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.sensors.gzipstream import GzipStream
from mamori.sensors.pcap.reader import PcapReader
from support.pcap_writer import Rec, classic_pcap, ether, ip4, ipv4, tcp


def frame(k: int, size: int) -> bytes:
    payload = bytes((k * 7 + j) & 0xFF for j in range(size))
    return ether(0x0800, ipv4(ip4("10.0.0.1"), ip4("10.0.0.2"), 6, tcp(k & 0xFFFF, 80, payload)))


RAW = classic_pcap([Rec(k, frame(k, 40 + k % 300)) for k in range(400)])


def whole_records(raw: bytes) -> list[bytes]:
    """The packet data of every record wholly inside ``raw`` (a classic pcap's first bytes)."""
    out, pos = [], 24
    while pos + 16 <= len(raw):
        incl = struct.unpack("<I", raw[pos + 8 : pos + 12])[0]
        if pos + 16 + incl > len(raw):
            break
        out.append(raw[pos + 16 : pos + 16 + incl])
        pos += 16 + incl
    return out


def inflatable(data: bytes) -> bytes:
    """What zlib inflates from a (possibly cut) gzip member, without raising."""
    return zlib.decompressobj(31).decompress(data)


def records_of(path: Path) -> tuple[list[bytes], PcapReader]:
    reader = PcapReader(path, 1 << 16)
    got = []
    for batch in reader:
        for i in range(len(batch)):
            off = int(batch.data_off[i])
            got.append(bytes(batch.buf[off : off + int(batch.caplen[i])]))
    return got, reader


@settings(max_examples=40, deadline=None)
@given(st.floats(0.02, 0.999), st.sampled_from([1, 6, 9]))
def test_a_cut_file_keeps_every_whole_record_before_the_cut(keep: float, level: int) -> None:
    zipped = gzip.compress(RAW, compresslevel=level)
    cut = zipped[: int(len(zipped) * keep)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cut.pcap.gz"
        path.write_bytes(cut)
        got, reader = records_of(path)
    want = whole_records(inflatable(cut))
    assert got == want
    assert reader.problem is not None and reader.problem.record == len(want) + 1
    assert "end-of-stream" in reader.problem.reason


def test_a_small_cut_file_is_not_lost_whole(tmp_path: Path) -> None:
    """Regression: a file that fits one read lost every packet when its end was cut."""
    zipped = gzip.compress(RAW[:2000])
    path = tmp_path / "small.pcap.gz"
    path.write_bytes(zipped[: len(zipped) * 2 // 3])
    got, reader = records_of(path)
    assert reader.problem is not None
    assert got and got == whole_records(inflatable(path.read_bytes()))


def test_members_and_padding_read_as_one_stream(tmp_path: Path) -> None:
    third = len(RAW) // 3
    parts = [RAW[:third], RAW[third : 2 * third], RAW[2 * third :]]
    data = gzip.compress(parts[0]) + b"\0" * 8 + gzip.compress(parts[1]) + gzip.compress(parts[2])
    path = tmp_path / "members.pcap.gz"
    path.write_bytes(data + b"\0" * 100)
    got, reader = records_of(path)
    assert got == whole_records(RAW) and reader.problem is None
    assert GzipStream(io.BytesIO(data)).read() == gzip.decompress(data) == RAW


def test_garbage_after_a_member_is_a_problem_after_every_record(tmp_path: Path) -> None:
    path = tmp_path / "tail.pcap.gz"
    path.write_bytes(gzip.compress(RAW) + b"not gzip")
    got, reader = records_of(path)
    assert got == whole_records(RAW)
    assert reader.problem is not None and reader.problem.record == len(got) + 1


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20])
def test_reads_of_any_size_give_the_bytes_gzip_gives(size: int) -> None:
    zipped = gzip.compress(RAW)
    stream = GzipStream(io.BytesIO(zipped))
    out = bytearray()
    while chunk := stream.read(size):
        assert len(chunk) <= size
        out += chunk
    assert bytes(out) == RAW


def test_an_error_is_raised_once_after_the_good_bytes() -> None:
    zipped = gzip.compress(RAW)
    stream = GzipStream(io.BytesIO(zipped[: len(zipped) // 2]))
    good = bytearray()
    buf = bytearray(1000)
    with pytest.raises(EOFError, match="end-of-stream"):
        while n := stream.readinto(buf):
            good += buf[:n]
    assert bytes(good) == inflatable(zipped[: len(zipped) // 2])
    assert stream.readinto(buf) == 0  # then the stream is over


@pytest.mark.parametrize("size", [-1, 1 << 16, 1 << 30])
def test_a_large_read_returns_the_good_bytes_before_raising(size: int) -> None:
    """``read`` gathers several steps: the bytes inflated before a cut come back from it, and
    the error from the next read, as line readers (the log sensors) need."""
    zipped = gzip.compress(RAW)
    cut = zipped[: len(zipped) // 2]
    stream = GzipStream(io.BytesIO(cut))
    assert stream.read(size) == inflatable(cut)
    with pytest.raises(EOFError, match="end-of-stream"):
        stream.read(size)
    assert stream.read(size) == b""
