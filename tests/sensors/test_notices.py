"""Notices: packets a capture holds that ingest reads but cannot analyse in full, one line each.

The counts are checked against a plain count over every record, whatever the batching, and the
lines against what a user must learn from them: the file, the first record, the reason, how many.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.sensors.pcap import decode as D
from mamori.sensors.pcap.notices import CaptureNotices
from mamori.sensors.pcap.reader import PcapReader, RecordBatch
from support.pcap_writer import PcapngWriter, Rec, classic_pcap, ether, ip4, ipv4, tcp


def frame(k: int, size: int = 80) -> bytes:
    payload = bytes((k + j) & 0xFF for j in range(size - 54))
    return ether(0x0800, ipv4(ip4("10.0.0.1"), ip4("10.0.0.2"), 6, tcp(k, 80, payload)))


def notices_of(path: Path, batch_bytes: int = 1 << 20) -> list[str]:
    found = CaptureNotices()
    for batch in PcapReader(path, batch_bytes):
        found.observe(batch)
    return [str(p) for p in found.problems(str(path))]


def test_a_clean_capture_has_no_notice(tmp_path: Path) -> None:
    path = tmp_path / "clean.pcap"
    path.write_bytes(classic_pcap([Rec(k, frame(k)) for k in range(5)]))
    assert notices_of(path) == []


@pytest.mark.parametrize(("linktype", "name"), [(147, "USER0"), (105, "Wi-Fi"), (65000, "")])
def test_an_undecoded_link_type_is_one_line_with_its_count(
    tmp_path: Path, linktype: int, name: str
) -> None:
    path = tmp_path / "other-link.pcap"
    path.write_bytes(classic_pcap([Rec(k, frame(k)) for k in range(3)], linktype))
    [line] = notices_of(path)
    assert line.startswith(f"{path}: record 1: link type {linktype}")
    assert name in line and "3 packet(s)" in line and "not analysed" in line
    assert "\n" not in line


def test_pcapng_names_the_first_record_of_each_undecoded_interface(tmp_path: Path) -> None:
    w = PcapngWriter().section().interface(1).interface(105).interface(147)
    for k, iface in enumerate([0, 0, 1, 0, 1, 2, 1]):
        w.epb(iface, k, frame(k))
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(w.bytes())
    lines = notices_of(path)
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}: record 3: link type 105") and "3 packet(s)" in lines[0]
    assert lines[1].startswith(f"{path}: record 6: link type 147") and "1 packet(s)" in lines[1]


def test_snaplen_cuts_are_one_line_naming_the_first_cut(tmp_path: Path) -> None:
    full = [frame(k, 300) for k in range(5)]
    cut = {1: 96, 3: 40}  # record 2 cut in its payload, record 4 inside its headers
    recs = [Rec(k, f[: cut.get(k, len(f))], wirelen=len(f)) for k, f in enumerate(full)]
    path = tmp_path / "cut.pcap"
    path.write_bytes(classic_pcap(recs, snaplen=96))
    [line] = notices_of(path)
    assert line.startswith(f"{path}: record 2: 2 packet(s) cut short by the capture's snaplen")
    assert "96 of 300 bytes" in line


def test_the_decoded_set_is_what_the_decoder_decodes() -> None:
    """``DECODED_LINKTYPES`` (what notices test) and ``_link_layer`` (what decode does) agree."""
    known = {lt for lt in range(0, 70_000) if D._link_layer(lt) != D._L_UNKNOWN}
    assert known == set(D.DECODED_LINKTYPES)


def _batch(
    linktype: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray, first: int
) -> RecordBatch:
    n = linktype.shape[0]
    zeros = np.zeros(n, np.int64)
    return RecordBatch(
        buf=np.zeros(1, np.uint8),
        data_off=zeros,
        ts_ns=zeros,
        caplen=caplen.astype(np.int32),
        wirelen=wirelen.astype(np.int32),
        linktype=linktype.astype(np.int32),
        file_off=zeros,
        first_record=first,
        snaplen=np.full(n, 65535, np.int32),
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([1, 1, 1, 101, 113, 105, 147]), st.integers(0, 3)),
        min_size=1,
        max_size=60,
    ),
    st.lists(st.integers(1, 20), min_size=1, max_size=8),
)
def test_counts_and_first_records_do_not_depend_on_batching(
    records: list[tuple[int, int]], sizes: list[int]
) -> None:
    lt = np.array([r[0] for r in records])
    wire = np.full(len(records), 100)
    cap = wire - np.array([r[1] for r in records]) * 10  # a nonzero step: this record is cut
    found = CaptureNotices()
    at = 0
    for size in sizes * len(records):
        if at >= len(records):
            break
        end = min(len(records), at + size)
        found.observe(_batch(lt[at:end], cap[at:end], wire[at:end], at))
        at = end
    if at < len(records):
        found.observe(_batch(lt[at:], cap[at:], wire[at:], at))
    undecoded = [i for i, v in enumerate(lt.tolist()) if v not in D.DECODED_LINKTYPES]
    want = {
        v: [lt.tolist().count(v), lt.tolist().index(v) + 1]
        for v in dict.fromkeys(lt[undecoded].tolist())
    }
    assert found.unknown == want
    cuts = np.flatnonzero(cap < wire)
    assert found.cut == len(cuts)
    if len(cuts):
        k = int(cuts[0])
        assert found.first_cut == (k + 1, int(cap[k]), int(wire[k]))
    else:
        assert found.first_cut is None
    lines = found.problems("x.pcap")
    assert [p.record for p in lines] == sorted(p.record for p in lines)
