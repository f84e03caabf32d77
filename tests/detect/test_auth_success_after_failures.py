"""A login after many failures: a golden case (sshd, Windows RDP; typos, late successes, other
machines and honeypots quiet) and the real OpenSSH log, whose one success followed no guessing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest

from mamori.detect.detectors.auth_success_after_failures import AuthSuccessAfterFailuresParams
from mamori.detect.engine import run_detectors
from support.auth_logs import OPENSSH, syslog_auth
from support.golden import COLUMNS, assert_key_sufficient, case_frames, detect, expected

ID = "auth.success_after_failures"


def test_golden_case() -> None:
    got = run_detectors(case_frames("auth_success_after_failures", "auth"), only=[ID]).alerts
    assert got.sort("src", "dst", nulls_last=True).select(COLUMNS).to_dicts() == expected(
        "auth_success_after_failures"
    )
    assert set(got["severity"]) == {"high"}
    # The success leads the evidence: it is what the alert is about.
    assert all(e[0].endswith("99") for e in got["evidence"])


def test_openssh_success_was_not_guessed(data_dir: Path) -> None:
    auth = syslog_auth(data_dir / OPENSSH)
    ok = auth.filter(pl.col("outcome") == "success")
    assert ok.height == 1  # Accepted password for fztu from 119.137.62.142
    assert detect(ID, {"auth": auth.lazy()}).height == 0
    # The same success after the log's loudest guesser's failures would be one.
    moved = auth.with_columns(
        src_ip=pl.when(pl.col("outcome") == "success")
        .then(pl.lit("183.62.140.253"))
        .otherwise("src_ip"),
        ts=pl.when(pl.col("outcome") == "success")
        .then(pl.lit(auth.filter(pl.col("src_ip") == "183.62.140.253")["ts"].max()))
        .otherwise("ts"),
    )
    alerts = detect(ID, {"auth": moved.lazy()})
    assert alerts["src"].to_list() == ["183.62.140.253"] and alerts["count"][0] >= 100


def test_repeated_successes_in_one_lookback_are_one_alert() -> None:
    """A tool that got in logs in again and again: one alert, paired from the first success."""
    rows = case_frames("auth_success_after_failures", "auth")["auth"].collect()
    first = rows.filter(pl.col("uid") == "GA99")
    again = pl.concat(
        [first.with_columns(uid=pl.lit(f"GA99.{k}"), ts=pl.col("ts") + pl.duration(minutes=k))
         for k in range(1, 20)]
    )  # fmt: skip
    alerts = detect(ID, {"auth": pl.concat([rows, again]).lazy()})
    ga = alerts.filter(pl.col("src") == "203.0.113.30")
    assert ga.height == 1 and ga["evidence"][0][0] == "GA99" and ga["count"][0] == 12


def test_each_source_alone_gives_its_own_alerts() -> None:
    rows = case_frames("auth_success_after_failures", "auth")["auth"].collect()
    assert_key_sufficient(lambda g: detect(ID, {"auth": g.lazy()}), rows, "src_ip")


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(AuthSuccessAfterFailuresParams(), min_failures=0)
    with pytest.raises(ValueError):
        dataclasses.replace(AuthSuccessAfterFailuresParams(), lookback_minutes=-1.0)
