"""Cutting connections out of captures: classic pcap and pcapng, fragments, ICMP; the cut holds
exactly the records the lake counted for those connections, byte for byte, and tshark reads it
as the same frames as the original."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dpkt
import polars as pl
import pytest

from mamori.cases.cut import CutError, cut_capture
from mamori.flows.pipeline import tables_of

CAPTURES = [
    "pcaps-ddos-stopddos/amp.dns.RRSIG.fragmented.pcap",  # IP fragments, ICMP, TCP, UDP
    "zeek-btest/Traces/http/cooper-grill-dvwa.pcapng",
    "zeek-btest/Traces/pcapng-multi-interface.pcapng",
]


def _tshark(path: Path) -> list[list[str]]:
    done = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.split("\t") for line in done.stdout.splitlines()]


def _records(path: Path) -> list[tuple[float, bytes]]:
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        reader = dpkt.pcapng.Reader(fh) if head == b"\n\r\r\n" else dpkt.pcap.Reader(fh)
        return list(reader)


@pytest.mark.parametrize("capture", CAPTURES)
def test_cut_holds_the_counted_records_unchanged(
    capture: str, data_dir: Path, tmp_path: Path
) -> None:
    source = data_dir / capture
    tables, _ = tables_of([source])
    conn = pl.from_arrow(tables["conn"])
    chosen = conn[::2]  # every other connection
    cut = cut_capture(source, chosen, tmp_path / "cut")
    counted = chosen.select("uid", (pl.col("orig_pkts") + pl.col("resp_pkts")).alias("n"))
    got = cut.per_uid.join(counted, on="uid", how="right")
    assert got.height == chosen.height
    assert (got["packets"] == got["n"]).all(), got.filter(pl.col("packets") != pl.col("n"))
    # tshark and dpkt read the cut as exactly the original's records at those record numbers
    original = _tshark(source)
    assert _tshark(cut.out) == [original[r - 1] for r in cut.records.tolist()]
    source_records = _records(source)
    assert _records(cut.out) == [source_records[r - 1] for r in cut.records.tolist()]


def test_fragments_travel_with_their_datagram(data_dir: Path, tmp_path: Path) -> None:
    source = data_dir / CAPTURES[0]
    conn = pl.from_arrow(tables_of([source])[0]["conn"])
    cut = cut_capture(source, conn, tmp_path / "cut.pcap")
    assert cut.per_uid["fragments"].sum() > 0
    # every fragment of every datagram tshark reassembles is in the cut (incomplete datagrams
    # never make a packet, so they belong to no connection, in Zeek as in mamori)
    flt = ["-Y", "ip.fragment", "-T", "fields", "-e", "ip.fragment"]
    out = subprocess.run(
        ["tshark", "-r", str(source), *flt], capture_output=True, text=True, check=True
    ).stdout
    frags = {int(x) for x in out.replace(",", " ").split()}
    assert len(frags) > 500
    assert frags <= set(cut.records.tolist())


def test_nothing_wanted_gives_an_empty_capture_that_still_opens(
    data_dir: Path, tmp_path: Path
) -> None:
    source = data_dir / CAPTURES[1]
    conn = pl.from_arrow(tables_of([source])[0]["conn"])
    cut = cut_capture(source, conn.clear(), tmp_path / "none")
    assert cut.packets == 0 and _tshark(cut.out) == []


def test_a_damaged_capture_is_named(tmp_path: Path, data_dir: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    conn = pl.from_arrow(tables_of([data_dir / CAPTURES[1]])[0]["conn"])
    with pytest.raises(CutError, match=r"bad\.pcap: not a pcap or pcapng capture"):
        cut_capture(bad, conn, tmp_path / "out.pcap")
