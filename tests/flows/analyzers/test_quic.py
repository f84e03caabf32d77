"""QUIC Initial packets: the RFCs' key vectors, Zeek's ssl.log on every QUIC test trace, and
robustness against any datagram."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.flows.analyzers.base import registered
from mamori.flows.analyzers.quic import initial_header, initial_keys
from mamori.flows.conversation import Conversation, Segment
from mamori.flows.pipeline import tables_of
from mamori.lake.export import write_zeek
from support.dpkt_conversations import conversations
from support.zeek_logs import read_zeek_log

QUIC = registered()["quic"]
DCID = bytes.fromhex("8394c8f03e515708")  # RFC 9001 A.1 and RFC 9369 A.1


@pytest.mark.parametrize(
    ("version", "client", "want"),
    [
        (1, True, ("1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c",
                   "9f50449e04a0e810283a1e9933adedd2")),
        (1, False, ("cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e",
                    "c206b8d9b9f0f37644430b490eeaa314")),
        (0x6B3343CF, True, ("8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f",
                            "45b95e15235d6f45a6b19cbcb0294ba9")),
        (0x6B3343CF, False, ("82db637861d55e1d011f19ea71d5d2a7", "dd13c276499c0249d3310652",
                             "edf6d05c83121201b436e16877593c3a")),
    ],
)  # fmt: skip
def test_initial_keys_are_the_rfc_vectors(version: int, client: bool, want: tuple) -> None:
    assert tuple(k.hex() for k in initial_keys(version, DCID, client)) == want


TRACES = {  # trace -> its Zeek btest baseline (base/protocols/quic, with Spicy)
    "chromium-115.0.5790.110-api-cirrus-com.pcap": "chromium",
    "curl-8.1.2-dev-http3-www-google-de.pcap": "curl-http3",
    "merlinc2_Zeek_example.pcapng": "merlinc2",
    "quic_win11_firefox_google.pcap": "run-pcap",
    "quicdoq.pcap": "quicdoq",
    "quicv2-http3-443.pcap": "quicv2-http3-443",
    "interop/quic-go_quic-go/handshake.pcap": "interop.quic-go_quic-go.handshake",
}
FIELDS = ["orig_h", "orig_p", "resp_h", "resp_p", "version", "cipher", "curve", "server_name",
          "ssl_history"]  # fmt: skip


@pytest.mark.parametrize("trace", sorted(TRACES))
def test_ssl_rows_of_quic_traces_are_zeeks(data_dir: Path, trace: str) -> None:
    """The handshake read from the Initial packets gives the ssl row Zeek's QUIC analyser gives
    (v1, v2, DNS over QUIC, a Retry-free interop run; with and without a server name)."""
    btest = data_dir / "zeek-btest"
    want = read_zeek_log(btest / f"Baseline/scripts.base.protocols.quic.{TRACES[trace]}/ssl.log")
    tables, stats = tables_of([btest / "Traces/quic" / trace])
    assert stats[0].error is None
    buf = io.StringIO()
    write_zeek("ssl", tables["ssl"], buf)
    ours = _parse(buf.getvalue())
    assert sorted(ours.select(FIELDS).rows()) == sorted(want.select(FIELDS).rows())
    conn = tables["conn"].to_pylist()
    assert any(r["service"] == "quic,ssl" for r in conn)


def _parse(text: str) -> pl.DataFrame:
    """Our table as Zeek prints it, read back like Zeek's own log."""
    fields = next(ln for ln in text.splitlines() if ln.startswith("#fields")).split("\t")[1:]
    rows = [ln.split("\t") for ln in text.splitlines() if ln and not ln.startswith("#")]
    return pl.DataFrame(rows, schema=[f.removeprefix("id.") for f in fields], orient="row")


def _merlin_datagrams(data_dir: Path) -> list[Segment]:
    trace = data_dir / "zeek-btest/Traces/quic/merlinc2_Zeek_example.pcapng"
    (conv,) = [c for c in conversations(trace) if c.proto == "udp"]
    return conv.segments


def test_the_first_datagram_opens_with_an_initial(data_dir: Path) -> None:
    segs = _merlin_datagrams(data_dir)
    head = initial_header(segs[0].data)
    assert head is not None and head[0] == 1 and len(head[1]) == 15  # Zeek's client_initial_dcid
    assert QUIC.matches("udp", 53241, 443, segs[0].data, b"")
    assert not QUIC.matches("udp", 53241, 443, b"\x40" + segs[0].data[1:], b"")  # short header


def _conv(segs: list[Segment]) -> Conversation:
    return Conversation("Cq", segs[0].ts if segs else 0.0, "10.0.0.4", 53241, "192.0.2.1", 443,
                        "udp", segs)  # fmt: skip


@given(st.lists(st.tuples(st.booleans(), st.binary(min_size=0, max_size=1400)), max_size=6))
def test_any_datagrams_never_raise(datagrams: list[tuple[bool, bytes]]) -> None:
    segs = [Segment(float(i), o, d) for i, (o, d) in enumerate(datagrams)]
    res = QUIC.analyze(_conv(segs))
    assert res.records == []  # its rows are the SSL analyser's, if any


@given(st.data())
def test_mutated_initials_never_raise(data_dir: Path, data: st.DataObject) -> None:
    segs = _merlin_datagrams(data_dir)[:6]
    out = []
    for s in segs:
        raw = bytearray(s.data)
        for _ in range(data.draw(st.integers(0, 3))):
            if raw:
                raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
        cut = data.draw(st.integers(0, len(raw)))
        out.append(Segment(s.ts, s.is_orig, bytes(raw[:cut] if data.draw(st.booleans()) else raw)))
    QUIC.analyze(_conv(out))
