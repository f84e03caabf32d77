"""A login that succeeds after many failures from the same source: the password was likely guessed.

Guessing that fails is noise every server on the Internet sees; guessing that ends in a
successful login is an intruder holding a valid account (T1078). For every successful login, the
failures from the same source against the same machine and service in the ``lookback`` before it
are counted (each guess once, see ``_auth``); enough of them make the success an alert of high
severity, with more confidence when the account that got in was among those being guessed.

Honeypot logins are left out: a honeypot accepting a guessed password is its design, not a
compromise (the honeypot detector reports those sessions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import EVIDENCE_MAX, Params, alerts, detector
from mamori.detect.detectors._auth import TARGET, attempts, guesses, users

ID = "auth.success_after_failures"
KEY = ("src_ip", TARGET, "service")


@dataclass(frozen=True)
class AuthSuccessAfterFailuresParams(Params):
    # Guesses from the source before a success for it to count as a guessed password; below the
    # brute-force limit would flag people who mistype, so the same default.
    min_failures: int = 10
    # How far back from the success failures are counted.
    lookback_minutes: float = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_failures < 1 or self.lookback_minutes <= 0:
            raise ValueError("min_failures must be >= 1 and lookback_minutes positive")


@detector(
    ID, reads="auth", key=("src_ip",), attack=("T1078",), params=AuthSuccessAfterFailuresParams
)
def auth_success_after_failures(
    auth: pl.LazyFrame, p: AuthSuccessAfterFailuresParams
) -> pl.LazyFrame:
    """Successful logins preceded by at least ``min_failures`` guesses from the same source."""
    real = auth.filter(pl.col("source") != "honeypot")
    keyed = [pl.col(TARGET).fill_null("")]  # a row with no machine named is one "machine"
    ok = (
        attempts(real, "success")
        .with_columns(keyed)
        .select(*KEY, s_ts="ts", s_uid="uid", s_user="user")
    )
    failed = attempts(real, "failure").with_columns(keyed).sort("ts", "uid")
    lookback = timedelta(minutes=p.lookback_minutes)
    # First cut without pairing rows: failures before each success and before its lookback, by
    # two as-of joins on a running count per source, machine and service (rows >= guesses).
    ranks = failed.select(*KEY, "ts", rank=pl.int_range(1, pl.len() + 1).over(KEY))
    before = (
        ok.sort("s_ts")
        .with_columns(start=pl.col("s_ts") - lookback - timedelta(microseconds=1))
        .join_asof(
            ranks,
            left_on="s_ts",
            right_on="ts",
            by=list(KEY),
            strategy="backward",
            check_sortedness=False,
        )
        .drop("ts")
        .sort("start")
        .join_asof(
            ranks.rename({"rank": "rank_start"}),
            left_on="start",
            right_on="ts",
            by=list(KEY),
            strategy="backward",
            check_sortedness=False,  # sorted just above; Polars cannot check it within groups
        )
        .filter(pl.col("rank").fill_null(0) - pl.col("rank_start").fill_null(0) >= p.min_failures)
        # Successes of one account in one lookback are one event (the engine would merge their
        # alerts): pairing only the first bounds the pairs on a busy gateway.
        .with_columns(bucket=pl.col("s_ts").dt.truncate(f"{int(lookback.total_seconds())}s"))
        .sort("s_ts", "s_uid")
        .unique(subset=[*KEY, "s_user", "bucket"], keep="first", maintain_order=True)
        .select(*KEY, "s_ts", "s_uid", "s_user")
    )
    pairs = (
        before.join(failed, on=list(KEY), how="inner", nulls_equal=True)
        .filter((pl.col("ts") <= pl.col("s_ts")) & (pl.col("ts") >= pl.col("s_ts") - lookback))
        .sort("ts", "uid")
    )
    hits = (
        pairs.group_by(*KEY, "s_ts", "s_uid", "s_user")
        .agg(
            guesses(),
            users(),
            pl.col("ts").min().alias("first_seen"),
            # The most recent failures lead up to the success: they are the evidence kept.
            pl.col("uid").tail(EVIDENCE_MAX - 1).alias("uids"),
            (pl.col("user") == pl.col("s_user")).any().fill_null(False).alias("same_user"),
        )
        .filter(pl.col("guesses") >= p.min_failures)
    )
    return alerts(
        hits,
        detector_id=ID,
        techniques=("T1078",),
        severity="high",
        confidence=pl.when(pl.col("same_user")).then(pl.lit(0.9)).otherwise(pl.lit(0.75)),
        summary=pl.format(
            "{} logged in to {} on {} as {} after {} failed logins ({} user name(s) tried{})",
            pl.col("src_ip"),
            pl.when(pl.col("service") == "").then(pl.lit("a service")).otherwise("service"),
            pl.when(pl.col(TARGET) != "").then(pl.col(TARGET)).otherwise(pl.lit("an unnamed host")),
            pl.col("s_user").fill_null("an unnamed user"),
            pl.col("guesses"),
            pl.col("users"),
            pl.when(pl.col("same_user"))
            .then(pl.lit(", this one among them"))
            .otherwise(pl.lit("")),
        ),
        src=pl.col("src_ip"),
        dst=pl.when(pl.col(TARGET) != "").then(pl.col(TARGET)),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("s_ts"),
        count=pl.col("guesses"),
        evidence_table="auth",
        evidence=pl.concat_list(pl.col("s_uid"), pl.col("uids")),
        key=pl.format(
            "{}|{}|{}|{}",
            pl.col("src_ip"),
            pl.col(TARGET),
            pl.col("service"),
            pl.col("s_user").fill_null(""),
        ),
    )
