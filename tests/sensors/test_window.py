"""The reader's two windows onto a capture: the file's pages mapped, or read into an array.

A plain capture on Linux is mapped (``sensors/pcap/window.py``); gzip and other streams are read.
Whatever the window, the reader must return the same records, the same problems and the same
room after a batch for fragment reassembly: these tests hold the mapped window to the read one.
"""

from __future__ import annotations

import gzip
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.sensors.pcap import window as window_module
from mamori.sensors.pcap.fragments import _room
from mamori.sensors.pcap.reader import TAIL_DIVISOR, CaptureError, PcapReader
from mamori.sensors.pcap.window import LIVE_SECONDS
from support.pcap_writer import PcapngWriter, Rec, classic_pcap, ether, ip4, ipv4, tcp

SMALL = 1 << 16  # the reader's minimum window
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="maps on Linux only")


def frame(k: int, size: int) -> bytes:
    """A TCP packet for small sizes; past what an IPv4 header can state, an Ethernet frame of
    a local experimental ethertype (the reader never looks inside)."""
    if size < 60_000:
        body = tcp(1000 + k % 50000, 80, b"") + bytes([k % 251]) * size
        return ether(0x0800, ipv4(ip4("10.0.0.1"), ip4("10.0.0.2"), 6, body))
    return ether(0x88B5, bytes([k % 251]) * size)


def records_of(path: Path, batch_bytes: int, mapped: bool) -> tuple[list[tuple], PcapReader]:
    """Every record as (ts, bytes, wirelen, linktype, file_off), copied out of the window."""
    reader = PcapReader(path, batch_bytes, mapped=mapped)
    out: list[tuple] = []
    for batch in reader:
        assert batch.first_record == len(out)
        assert batch.buf.shape[0] >= batch_bytes  # only a record larger than it grows it
        for i in range(len(batch)):
            off = int(batch.data_off[i])
            data = bytes(batch.buf[off : off + int(batch.caplen[i])])
            out.append(
                (
                    int(batch.ts_ns[i]),
                    data,
                    int(batch.wirelen[i]),
                    int(batch.linktype[i]),
                    int(batch.file_off[i]),
                )
            )
    return out, reader


def write(tmp_path: Path, data: bytes, name: str, age: float = 3600.0) -> Path:
    """The capture as a finished file: last written ``age`` seconds ago (a file written to in
    the last minute is read, not mapped: ``window.LIVE_SECONDS``)."""
    path = tmp_path / name
    path.write_bytes(data)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


@st.composite
def captures(draw: st.DrawFn) -> tuple[bytes, str]:
    """Classic or pcapng captures whose records straddle window and page boundaries, some larger
    than the smallest window, cut anywhere."""
    sizes = draw(
        st.lists(
            st.one_of(st.integers(0, 5000), st.integers(60_000, 140_000)), min_size=1, max_size=40
        )
    )
    recs = [Rec(1_000_000_000 * k + k, frame(k, s)) for k, s in enumerate(sizes)]
    if draw(st.booleans()):
        raw = classic_pcap(recs, nanos=draw(st.booleans()), big_endian=draw(st.booleans()))
        name = "c.pcap"
    else:
        w = PcapngWriter().section(big_endian=draw(st.booleans())).interface(1, tsresol=9)
        for r in recs:
            w.epb(0, r.ts_ns, r.data)
        raw = w.bytes()
        name = "c.pcapng"
    cut = draw(st.integers(len(raw) // 2, len(raw)))
    return raw[:cut], name


@linux_only
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    case=captures(),
    batch_bytes=st.sampled_from([SMALL, SMALL + 1, 3 * SMALL + 4095, 1 << 20]),
)
def test_mapped_and_read_windows_give_the_same_records_and_problem(
    tmp_path: Path, case: tuple[bytes, str], batch_bytes: int
) -> None:
    raw, name = case
    path = write(tmp_path, raw, name)
    mapped, r_map = records_of(path, batch_bytes, True)
    read, r_read = records_of(path, batch_bytes, False)
    assert r_map.window == "MappedWindow" and r_read.window == "ReadWindow"
    assert mapped == read
    assert r_map.problem == r_read.problem
    assert r_map.records == r_read.records == len(read)
    # Progress is the bytes of the file walked through, however they came in.
    assert r_map.bytes_read == r_read.bytes_read == len(raw)


@linux_only
def test_shared_captures_read_alike_through_both_windows(data_dir: Path) -> None:
    captures = sorted(
        (p for p in data_dir.rglob("*") if p.suffix in (".pcap", ".pcapng")),
        key=lambda p: p.stat().st_size,
    )
    for path in captures[-3:] + captures[:: max(1, len(captures) // 12)]:
        mapped, r_map = records_of(path, SMALL, True)
        read, r_read = records_of(path, SMALL, False)
        assert r_map.window == "MappedWindow", path
        assert mapped == read and r_map.problem == r_read.problem, path


@pytest.mark.parametrize("batch_bytes", [SMALL, 16 << 20])
@pytest.mark.parametrize("mapped", [True, False])
def test_room_after_the_batch_for_reassembled_datagrams(
    tmp_path: Path, mapped: bool, batch_bytes: int
) -> None:
    """Fragment reassembly appends a batch's datagrams after its bytes without copying the batch
    (``fragments._room``): either window must be ``batch_bytes`` long (ingest's batches are as
    large as it asks, whatever the file) and leave that room, writable, after ``buf``."""
    recs = [Rec(k, frame(k, 1400)) for k in range(300)]
    path = write(tmp_path, classic_pcap(recs), "c.pcap")
    batches = 0
    for batch in PcapReader(path, batch_bytes, mapped=mapped):
        assert batch.buf.shape[0] == batch_bytes
        grown = _room(batch.buf, batch.buf.shape[0] + batch_bytes // TAIL_DIVISOR)
        assert grown is not None
        assert grown.ctypes.data == batch.buf.ctypes.data
        first = bytes(batch.buf[batch.data_off[0] : batch.data_off[0] + 8])
        grown[batch.buf.shape[0] :] = 0xA5  # what reassembly does with the room
        assert bytes(batch.buf[batch.data_off[0] : batch.data_off[0] + 8]) == first
        batches += 1
    assert batches >= (5 if batch_bytes == SMALL else 1)


@linux_only
def test_writing_into_a_mapped_window_never_reaches_the_file(tmp_path: Path) -> None:
    recs = [Rec(k, frame(k, 1000)) for k in range(200)]
    raw = classic_pcap(recs)
    path = write(tmp_path, raw, "c.pcap")
    reader = PcapReader(path, SMALL)
    for batch in reader:
        batch.buf[: batch.data_off[-1]] = 0  # a stage scribbling over the batch
    assert reader.window == "MappedWindow"
    assert path.read_bytes() == raw


@linux_only
def test_a_file_written_to_lately_is_read_not_mapped(tmp_path: Path) -> None:
    """It may still be shortened under the reader (copy-and-truncate rotation), and a mapped page
    past a new end faults beyond any Python handler."""
    raw = classic_pcap([Rec(k, frame(k, 100)) for k in range(20)])
    fresh = write(tmp_path, raw, "live.pcap", age=1.0)
    old = write(tmp_path, raw, "done.pcap", age=LIVE_SECONDS + 5)
    live_reader, done_reader = PcapReader(fresh), PcapReader(old)
    assert sum(len(b) for b in live_reader) == sum(len(b) for b in done_reader) == 20
    assert live_reader.window == "ReadWindow"
    assert done_reader.window == "MappedWindow"


@pytest.mark.parametrize("mapped", [True, False])
def test_a_capture_still_being_written_is_read_to_its_new_end(tmp_path: Path, mapped: bool) -> None:
    recs = [Rec(k, frame(k, 1400)) for k in range(400)]
    raw = classic_pcap(recs)
    head = 24 + 3 * (16 + len(recs[0].data)) * 30  # the header and 90 whole records
    path = write(tmp_path, raw[:head], "c.pcap")
    reader = PcapReader(path, SMALL, mapped=mapped)
    got = 0
    for k, batch in enumerate(reader):
        if k == 0:
            with path.open("ab") as fh:
                fh.write(raw[head:])  # the sensor appends while we read
        got += len(batch)
    assert reader.problem is None
    assert got == 400 and reader.records == 400
    if sys.platform.startswith("linux"):
        assert reader.window == ("MappedWindow" if mapped else "ReadWindow")


def test_gzip_and_streams_are_read_not_mapped(tmp_path: Path) -> None:
    recs = [Rec(k, frame(k, 100)) for k in range(50)]
    path = write(tmp_path, gzip.compress(classic_pcap(recs)), "c.pcap.gz")
    reader = PcapReader(path, SMALL)
    assert sum(len(b) for b in reader) == 50
    assert reader.window == "ReadWindow"


@linux_only
def test_a_mapped_window_never_shows_bytes_past_the_end_of_the_file(tmp_path: Path) -> None:
    """A short last window after a full one: past the file's end the window holds zeros (the
    file's last page is zero-filled, and what the previous window mapped there went back to
    anonymous memory), never the previous window's bytes, and reading it cannot fault."""
    recs = [Rec(k, frame(k, 1400)) for k in range(100)]
    path = write(tmp_path, classic_pcap(recs), "c.pcap")
    reader = PcapReader(path, SMALL)
    batches = list(reader)
    assert reader.window == "MappedWindow" and len(batches) >= 2
    last = batches[-1]
    end = int(last.data_off[-1] + last.caplen[-1])
    assert end < last.buf.shape[0] - 4096
    assert not np.asarray(last.buf[end:]).any()
    assert reader.records == 100


def test_empty_and_header_only_files_behave_as_before(tmp_path: Path) -> None:
    with pytest.raises(CaptureError):
        list(PcapReader(write(tmp_path, b"", "e.pcap")))
    reader = PcapReader(write(tmp_path, classic_pcap([]), "h.pcap"))
    assert list(reader) == [] and reader.problem is None


@linux_only
def test_a_failed_mapping_mid_file_is_a_problem_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every record before the failure is kept; the problem names the first record lost."""
    recs = [Rec(k, frame(k, 1400)) for k in range(300)]
    path = write(tmp_path, classic_pcap(recs), "c.pcap")
    reader = PcapReader(path, SMALL)
    got = 0
    for k, batch in enumerate(reader):
        got += len(batch)
        if k == 1:

            def refuse(*_args: object) -> None:
                raise OSError(12, "mmap of the capture failed: Cannot allocate memory")

            monkeypatch.setattr(window_module._Libc, "map", refuse)
    assert reader.window == "MappedWindow"
    assert 0 < got < 300 and reader.records == got
    assert reader.problem is not None and reader.problem.record == got + 1
    assert "Cannot allocate memory" in reader.problem.reason
