"""Credentials in clear: AgentTesla's FTP exfiltration, a plain FTP download and a Telnet session
are found; anonymous FTP, FTP over TLS and ordinary browsing are not; a password never reaches an
alert. No capture here carries HTTP Basic auth, so that path is proven by the golden case."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.detect.engine import run_detectors
from support.golden import COLUMNS, capture_frames, case_frames, detect, expected

ID = "cleartext.credentials"
AGENTTESLA_FTP = (
    "zeek-detector-pcaps/zeek-agenttesla-detector/testing/Traces/"
    "f9421792-7d2c-47d3-90e0-07eb54ae12fa.pcap"
)


def alerts_of(data_dir: Path, capture: str) -> pl.DataFrame:
    return run_detectors(capture_frames(data_dir / capture), only=[ID]).alerts


def test_agenttesla_ftp_exfiltration_exposes_its_login(data_dir: Path) -> None:
    got = alerts_of(data_dir, AGENTTESLA_FTP)
    assert got.height == 1
    a = got.row(0, named=True)
    assert (a["src"], a["dst"], a["severity"], a["evidence_table"]) == (
        "192.168.100.164", "143.95.79.226", "medium", "ftp",
    )  # fmt: skip
    assert "husband@elquijotebanquetes.com (password seen" in a["summary"]
    assert a["techniques"] == ["T1552", "T1040"]


def test_plain_ftp_download_with_an_account(data_dir: Path) -> None:
    got = alerts_of(data_dir, "suricata-verify/tests/ftp/ftp-download-passive/input.pcap")
    assert got.select("src", "dst", "severity").rows() == [("172.23.0.3", "172.23.0.2", "medium")]
    assert "user bob (password seen" in got["summary"][0]


def test_telnet_session_is_low(data_dir: Path) -> None:
    got = alerts_of(data_dir, "suricata-verify/tests/telnet/telnet-01/telnet.pcap")
    assert got.select("src", "dst", "severity", "evidence_table").rows() == [
        ("192.168.0.2", "192.168.0.1", "low", "conn")
    ]


@pytest.mark.parametrize(
    "capture",
    [
        "zeek-btest/Traces/ftp/ipv4.pcap",  # anonymous
        "zeek-btest/Traces/ftp/ipv6.pcap",  # anonymous
        "zeek-btest/Traces/ftp/bigtransfer.pcap",  # user "ftp", a guest id
        "zeek-btest/Traces/ftp/ftp-auth-tls.pcap",  # login inside TLS
        "zeek-btest/Traces/http/get.pcap",
        "zeek-btest/Traces/wikipedia.pcap",
        "zeek-btest/Traces/ssh/ssh.pcap",
    ],
)
def test_quiet_without_credentials(data_dir: Path, capture: str) -> None:
    assert alerts_of(data_dir, capture).height == 0


def test_golden_case() -> None:
    """Zeek-style USER/PASS rows (password logged), anonymous FTP, AUTH TLS, HTTP Basic, Telnet on
    23 and a telnet-detected session on another port; unanswered Telnet stays quiet."""
    got = run_detectors(case_frames("cleartext_credentials", "ftp"), only=[ID]).alerts
    got = got.sort("src", "dst", nulls_last=True).select(COLUMNS)
    assert got.to_dicts() == expected("cleartext_credentials")


def test_a_password_never_reaches_an_alert() -> None:
    frames = case_frames("cleartext_credentials", "ftp")
    assert "hunter2" in frames["ftp"].collect()["password"].to_list()
    got = detect(ID, frames)
    assert got.height == 4 and "hunter2" not in str(got.to_dicts())


def test_each_source_alone_gives_its_own_alerts() -> None:
    frames = {t: f.collect() for t, f in case_frames("cleartext_credentials", "ftp").items()}
    with_src = {t: f for t, f in frames.items() if "orig_h" in f.columns}
    sources = pl.concat([f.select("orig_h") for f in with_src.values()])
    parts = [
        detect(ID, {t: f.filter(pl.col("orig_h") == src).lazy() for t, f in with_src.items()})
        for src in sources.unique()["orig_h"]
    ]
    whole = detect(ID, {t: f.lazy() for t, f in frames.items()})
    assert pl.concat(parts).sort("key", "first_seen").equals(whole)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_row_order_does_not_matter(data: st.DataObject) -> None:
    frames = {t: f.collect() for t, f in case_frames("cleartext_credentials", "ftp").items()}
    shuffled = {
        t: f[data.draw(st.permutations(list(range(f.height))))].lazy() if f.height else f.lazy()
        for t, f in frames.items()
    }
    assert detect(ID, shuffled).equals(detect(ID, {t: f.lazy() for t, f in frames.items()}))
