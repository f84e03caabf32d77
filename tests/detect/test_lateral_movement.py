"""Internal fan-out over admin protocols: a golden case, the baseline, benign Windows captures,
the partition contract and properties. No capture here shows lateral movement (the evtx samples
are host logs, not packets), so positives are synthetic."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.detect.detectors.lateral_movement import LateralMovementParams
from mamori.detect.engine import run_detectors
from support.golden import COLUMNS, capture_frames, case_frames, detect, expected, typed

ID = "lateral.movement"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_golden_case() -> None:
    """A workstation that used two file servers then reached nine new hosts over SMB and WinRM
    (T1021.002, .006); a jump host's first RDP window (no history yet) alerts, its repeat does not;
    refused SMB, SSH to the Internet and HTTPS fan-out do not count."""
    got = run_detectors(case_frames("lateral_movement", "conn"), only=[ID]).alerts
    got = got.sort("src", "dst", nulls_last=True).select(COLUMNS)
    assert got.to_dicts() == expected("lateral_movement")


@pytest.mark.parametrize(
    "capture",
    [
        "zeek-btest/Traces/smb/smb2readwrite.pcap",
        "zeek-btest/Traces/smb/smb3.pcap",
        "zeek-btest/Traces/rdp/rdp-to-ssl.pcap",
        "zeek-btest/Traces/dce-rpc/cs_window7-join_stream092.pcap",
        "zeek-btest/Traces/krb/smb_gssapi.pcap",
        "zeek-btest/Traces/ssh/sshguess.pcap",
    ],
)
def test_quiet_on_real_windows_and_ssh_traffic(data_dir: Path, capture: str) -> None:
    assert run_detectors(capture_frames(data_dir / capture), only=[ID]).alerts.height == 0


def rows(spec: list, tag: str = "L", ok: bool = True) -> pl.DataFrame:  # type: ignore[type-arg]
    """Conn rows from (src, dst, port, seconds after T0), all local."""
    out = [
        {"ts": (T0 + timedelta(seconds=sec)).isoformat(), "uid": f"{tag}{i}", "orig_h": src,
         "orig_p": 40000, "resp_h": dst, "resp_p": port, "proto": "tcp", "service": None,
         "conn_state": "SF" if ok else "REJ", "local_orig": True, "local_resp": True}
        for i, (src, dst, port, sec) in enumerate(spec)
    ]  # fmt: skip
    return typed("conn", out)


def lateral(frame: pl.DataFrame, p: LateralMovementParams | None = None) -> pl.DataFrame:
    return detect(ID, {"conn": frame.lazy()}, p)


def test_a_source_back_at_its_usual_spread_is_quiet() -> None:
    """Ten hosts every hour is this admin's baseline: after the first hour, nothing new."""
    spec = [("10.5.0.1", f"10.5.1.{k}", 3389, h * 3600 + k) for h in range(5) for k in range(10)]
    got = lateral(rows(spec))
    assert got["first_seen"].to_list() == [T0]


def test_fan_out_well_above_baseline_alerts_even_with_history() -> None:
    usual = [("10.5.0.2", f"10.5.1.{k % 3}", 445, h * 3600 + k) for h in range(4) for k in range(3)]
    burst = [("10.5.0.2", f"10.5.2.{k}", 445, 5 * 3600 + k) for k in range(25)]
    got = lateral(rows(usual + burst))
    assert got["severity"].to_list() == ["high"] and got["count"].to_list() == [25]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(LateralMovementParams(), window_minutes=0.0)


CONNECT = st.tuples(
    st.sampled_from(["10.6.0.1", "10.6.0.2", "10.6.0.3"]),
    st.sampled_from([f"10.6.1.{k}" for k in range(12)]),
    st.sampled_from([22, 135, 445, 3389, 5985]),
    st.floats(0, 4 * 3600, allow_nan=False).map(lambda s: round(s, 3)),
)
SLOW = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(spec=st.lists(CONNECT, min_size=1, max_size=80), data=st.data())
def test_row_order_does_not_matter(spec: list, data: st.DataObject) -> None:  # type: ignore[type-arg]
    frame = rows(spec)
    order = data.draw(st.permutations(list(range(frame.height))))
    assert lateral(frame[order]).equals(lateral(frame))


@SLOW
@given(spec=st.lists(CONNECT, min_size=1, max_size=80))
def test_each_source_alone_gives_its_own_alerts(spec: list) -> None:  # type: ignore[type-arg]
    frame = rows(spec)
    parts = [lateral(p) for p in frame.partition_by("orig_h")]
    assert pl.concat(parts).sort("key", "first_seen").equals(lateral(frame))


@SLOW
@given(
    move=st.lists(CONNECT.map(lambda c: ("10.66.0.1", *c[1:])), min_size=1, max_size=60),
    refused=st.lists(CONNECT, max_size=60),
)
def test_refused_connections_change_nothing(move: list, refused: list) -> None:  # type: ignore[type-arg]
    alone = lateral(rows(move, "M"))
    assert lateral(pl.concat([rows(move, "M"), rows(refused, "R", ok=False)])).equals(alone)
    assert lateral(rows(refused, "R", ok=False)).height == 0
