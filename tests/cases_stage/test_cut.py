"""Cutting connections out of captures: classic pcap and pcapng, fragments, ICMP; the cut holds
exactly the records the lake counted for those connections, byte for byte, and tshark reads it
as the same frames as the original."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dpkt
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.cases.cut import CutError, cut_capture
from mamori.flows.pipeline import tables_of
from support import pcap_writer

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


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    packets=st.lists(
        st.tuples(
            st.integers(0, 2),  # client host
            st.integers(0, 1),  # server host
            st.sampled_from([53, 123]),  # server port
            st.integers(40000, 40002),  # client port: few, so 5-tuples are reused
            st.booleans(),  # direction
            st.sampled_from([0.001, 1.0, 90.0]),  # gap: 90 s ends a UDP connection (60 s)
            st.binary(min_size=0, max_size=30),
            st.sampled_from(["udp", "icmp", "unreachable"]),
        ),
        min_size=1,
        max_size=60,
    ),
    pick=st.data(),
)
def test_any_subset_of_connections_is_cut_exactly(
    tmp_path: Path, packets: list, pick: st.DataObject
) -> None:
    """Synthetic captures with reused 5-tuples, timeouts and ICMP of two kinds: whatever connections are
    chosen, the cut holds exactly their packets (the lake's count of each) and nothing else,
    each record unchanged."""
    records, t = [], 1_700_000_000 * 10**9
    for client, server, sport, cport, to_server, gap, payload, kind in packets:
        t += int(gap * 1e9)
        c, s = pcap_writer.ip4(f"10.0.0.{client + 1}"), pcap_writer.ip4(f"192.0.2.{server + 1}")
        src, dst = (c, s) if to_server else (s, c)
        if kind == "udp":
            l4 = (
                pcap_writer.udp(cport, sport, payload)
                if to_server
                else pcap_writer.udp(sport, cport, payload)
            )
            ip = pcap_writer.ipv4(src, dst, 17, l4)
        elif kind == "icmp":  # echo request or reply
            ip = pcap_writer.ipv4(
                src, dst, 1, pcap_writer.icmp(8 if to_server else 0, 0, b"\0\1\0\1" + payload)
            )
        else:  # port unreachable, beside echoes between the same hosts
            ip = pcap_writer.ipv4(src, dst, 1, pcap_writer.icmp(3, 3, b"\0\0\0\0" + payload))
        records.append(pcap_writer.Rec(t, pcap_writer.ether(0x0800, ip)))
    source = tmp_path / "synthetic.pcap"
    source.write_bytes(pcap_writer.classic_pcap(records))
    tables = tables_of([source])[0]
    if "conn" not in tables:  # e.g. only truncated ICMP: no connection at all, nothing to cut
        return
    conn = pl.from_arrow(tables["conn"])
    mask = pick.draw(st.lists(st.booleans(), min_size=conn.height, max_size=conn.height))
    chosen = conn.filter(pl.Series(mask, dtype=pl.Boolean))
    cut = cut_capture(source, chosen, tmp_path / "cut.pcap")
    want = chosen.select("uid", (pl.col("orig_pkts") + pl.col("resp_pkts")).alias("n"))
    got = want.join(cut.per_uid, on="uid", how="left").with_columns(pl.col("packets").fill_null(0))
    assert (got["packets"] == got["n"]).all()
    assert cut.packets == int(want["n"].sum() or 0)  # each packet in one connection only
    assert _records(cut.out) == [_records(source)[r - 1] for r in cut.records.tolist()]
