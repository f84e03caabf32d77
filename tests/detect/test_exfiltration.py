"""Exfiltration by volume: large uploads to rare external destinations, from packets to alert, and
silence on every shared capture (none holds a large upload: the positives are a golden case and
captures written here, packet by packet, with dpkt)."""

from __future__ import annotations

import csv
import dataclasses
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dpkt
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.detect.base import load_params
from mamori.detect.detectors.exfiltration import ID, MIB, ExfiltrationParams
from mamori.detect.engine import run_detectors
from support.golden import COLUMNS, capture_frames, case_frames, detect, expected, typed

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_golden_case() -> None:
    """Cloud storage, FTP data, a standing channel on an odd port and a split archive are found,
    each with its technique; a download, a backup service many hosts use, a small upload, internal
    copies, a video call, uploads in separate windows, multicast and a sequence jump are not."""
    got = run_detectors(case_frames("exfiltration", "conn"), only=[ID]).alerts
    assert got.sort("src", "dst", nulls_last=True).select(COLUMNS).to_dicts() == expected(
        "exfiltration"
    )


def _tcp_capture(path: Path, client: str, server: str, port: int, up: int, down: int) -> None:
    """A complete TCP connection (handshake, data both ways, FIN) as a classic pcap."""
    w = dpkt.pcap.Writer(path.open("wb"))
    c, s = socket.inet_aton(client), socket.inet_aton(server)
    cseq, sseq, t = 1000, 5000, 1_700_000_000.0

    def send(src: bytes, dst: bytes, sp: int, dp: int, seq: int, ack: int, flags: int, data=b""):  # type: ignore[no-untyped-def]
        nonlocal t
        tcp = dpkt.tcp.TCP(sport=sp, dport=dp, seq=seq, ack=ack, flags=flags, data=data)
        ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_TCP, data=tcp, ttl=64)
        ip.len = len(ip)
        eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)
        w.writepkt(bytes(eth), ts=t)
        t += 0.0005

    A, S, F, P = dpkt.tcp.TH_ACK, dpkt.tcp.TH_SYN, dpkt.tcp.TH_FIN, dpkt.tcp.TH_PUSH
    send(c, s, 50000, port, cseq, 0, S)
    send(s, c, port, 50000, sseq, cseq + 1, S | A)
    cseq, sseq = cseq + 1, sseq + 1
    send(c, s, 50000, port, cseq, sseq, A)
    for sender, total in ((c, up), (s, down)):
        sent = 0
        while sent < total:
            chunk = b"x" * min(1400, total - sent)
            if sender == c:
                send(c, s, 50000, port, cseq, sseq, A | P, chunk)
                cseq += len(chunk)
            else:
                send(s, c, port, 50000, sseq, cseq, A | P, chunk)
                sseq += len(chunk)
            sent += len(chunk)
            if sent % (1400 * 20) == 0 or sent == total:  # delayed ACKs from the receiver
                if sender == c:
                    send(s, c, port, 50000, sseq, cseq, A)
                else:
                    send(c, s, 50000, port, cseq, sseq, A)
    send(c, s, 50000, port, cseq, sseq, F | A)
    send(s, c, port, 50000, sseq, cseq + 1, F | A)
    send(c, s, 50000, port, cseq + 1, sseq + 1, A)
    w.close()


def test_an_upload_in_packets_is_found(tmp_path: Path) -> None:
    """12 MiB from a local host to an external server (the DcRAT C2 address of the shared capture; the
    documentation ranges count as local, as in Zeek) on 8443, 3 KiB back: ingested from packets,
    one medium T1048 alert naming both ends, evidence the connection."""
    path = tmp_path / "upload.pcap"
    _tcp_capture(path, "10.9.0.5", "186.169.47.11", 8443, 12 * MIB, 3000)
    frames = capture_frames(path)
    got = run_detectors(frames, only=[ID]).alerts
    uid = frames["conn"].collect()["uid"].to_list()
    assert got.select("src", "dst", "severity", "techniques", "evidence").rows() == [
        ("10.9.0.5", "186.169.47.11", "medium", ["T1048"], uid)
    ]
    assert "sent 12.0 MiB to 186.169.47.11 on port 8443 and received 2.9 KiB" in got["summary"][0]


def test_the_same_bytes_downloaded_are_not(tmp_path: Path) -> None:
    path = tmp_path / "download.pcap"
    _tcp_capture(path, "10.9.0.5", "186.169.47.11", 8443, 3000, 12 * MIB)
    assert run_detectors(capture_frames(path), only=[ID]).alerts.height == 0


def test_quiet_on_every_shared_capture(data_dir: Path) -> None:
    """Every capture of the shared data (attacks included: none is a large upload) raises no
    exfiltration alert at the default thresholds."""
    with (data_dir / "MANIFEST.tsv").open(newline="") as fh:
        captures = [
            r[0] for r in csv.reader(fh, delimiter="\t")
            if len(r) >= 4 and r[0].endswith((".pcap", ".pcapng", ".cap"))
        ]  # fmt: skip
    assert len(captures) > 150
    loud = {}
    for capture in captures:
        got = run_detectors(capture_frames(data_dir / capture), only=[ID]).alerts
        if got.height:
            loud[capture] = got["summary"].to_list()
    assert not loud, loud


def test_each_destination_alone_gives_its_own_alerts() -> None:
    """key=("resp_h",): splitting connections by destination gives the same alerts as the whole
    (rarity is counted per destination, so nothing crosses the split)."""
    frames = case_frames("exfiltration", "conn")
    conn = frames["conn"].collect()
    whole = detect(ID, frames)
    parts = [detect(ID, frames | {"conn": g.lazy()}) for g in conn.partition_by("resp_h")]
    assert pl.concat(parts).sort("key", "first_seen").equals(whole)


UPLOAD = st.tuples(
    st.sampled_from(["10.7.0.1", "10.7.0.2", "10.7.0.3", "10.7.0.4"]),
    st.sampled_from(["192.0.2.1", "192.0.2.2", "203.0.113.3"]),
    st.sampled_from([443, 8443, 21, 7000]),
    st.integers(0, 8 * MIB),  # sent
    st.integers(0, 2 * MIB),  # received
    st.floats(0, 7200, allow_nan=False).map(lambda s: round(s, 3)),
)
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def conn(spec: list, tag: str = "U") -> pl.DataFrame:  # type: ignore[type-arg]
    rows = [
        {"ts": (T0 + timedelta(seconds=sec)).isoformat(), "uid": f"{tag}{i}", "orig_h": src,
         "orig_p": 40000 + i % 20000, "resp_h": dst, "resp_p": port, "proto": "tcp",
         "conn_state": "SF", "duration": 5.0, "orig_bytes": up, "resp_bytes": down,
         "orig_ip_bytes": up + 4000, "resp_ip_bytes": down + 4000, "local_orig": True,
         "local_resp": False, "source": "t", "first_record": 1, "last_record": 2}
        for i, (src, dst, port, up, down, sec) in enumerate(spec)
    ]  # fmt: skip
    return typed("conn", rows)


def exfil(frame: pl.DataFrame) -> pl.DataFrame:
    return detect(ID, {"conn": frame.lazy()}, ExfiltrationParams(min_bytes=10 * MIB))


@SLOW
@given(spec=st.lists(UPLOAD, max_size=40), data=st.data())
def test_row_order_does_not_matter(spec: list, data: st.DataObject) -> None:  # type: ignore[type-arg]
    frame = conn(spec)
    order = data.draw(st.permutations(list(range(frame.height))))
    assert exfil(frame[order]).equals(exfil(frame))


@SLOW
@given(spec=st.lists(UPLOAD, max_size=40))
def test_every_alert_meets_the_thresholds(spec: list) -> None:  # type: ignore[type-arg]
    """Whatever the traffic, an alert's window really holds >= min_bytes sent, >= min_ratio times
    what came back, to a destination at most rare_max_hosts local hosts reached."""
    frame = conn(spec)
    p = ExfiltrationParams()
    for a in exfil(frame).iter_rows(named=True):
        rows = frame.filter(pl.col("uid").is_in(a["evidence"]))
        assert rows["orig_bytes"].sum() >= p.min_bytes
        assert rows["orig_bytes"].sum() >= p.min_ratio * rows["resp_bytes"].sum()
        start = rows["ts"].min().replace(minute=0, second=0, microsecond=0)  # type: ignore[union-attr]
        window = frame.filter(
            (pl.col("resp_h") == a["dst"])
            & (pl.col("ts") >= start)
            & (pl.col("ts") < start + timedelta(minutes=p.window_minutes))
        )
        assert window["orig_h"].n_unique() <= p.rare_max_hosts


@SLOW
@given(spec=st.lists(UPLOAD, max_size=40))
def test_more_received_never_makes_an_alert(spec: list) -> None:  # type: ignore[type-arg]
    """Adding download bytes can only make a transfer less one-sided: alerts may vanish, never
    appear."""
    before = set(exfil(conn(spec))["key"])
    more = [(s, d, p, up, down + MIB, t) for s, d, p, up, down, t in spec]
    assert set(exfil(conn(more))["key"]) <= before


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(ExfiltrationParams(), min_ratio=0.5)
    with pytest.raises(ValueError):
        dataclasses.replace(ExfiltrationParams(), rare_max_hosts=0)


def test_services_come_from_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "detect.yaml"
    cfg.write_text(f"{ID}:\n  min_bytes: 1048576\n  cloud_storage: [files.example.com]\n")
    p = load_params(cfg)[ID]
    assert isinstance(p, ExfiltrationParams)
    assert p.min_bytes == MIB and p.cloud_storage == ("files.example.com",)


@SLOW
@given(spec=st.lists(UPLOAD, max_size=40))
def test_each_destination_decides_alone(spec: list) -> None:  # type: ignore[type-arg]
    """The partition contract on any traffic: per-destination runs give the whole run's alerts."""
    frame = conn(spec)
    whole = exfil(frame)
    parts = [exfil(g) for g in frame.partition_by("resp_h")] or [whole]
    assert pl.concat(parts).sort("key", "first_seen").equals(whole)
