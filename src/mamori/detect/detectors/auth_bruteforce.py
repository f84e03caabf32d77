"""Password guessing seen in the hosts' own logs: one source failing again and again on one login.

The log-side twin of ``bruteforce.ssh``: it sees what the network cannot (encrypted SSH, a
Windows domain's logons, FTP over TLS) and counts every source alike, since the ``auth`` table
holds sshd, PAM, ftpd and login lines, Windows logon events and honeypot logins in one shape.
Failures are counted per source, target machine and service in a window, each guess once (see
``_auth``); reaching the limit raises one alert with the user names tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.detectors._auth import TARGET, attempts, guesses, users
from mamori.detect.scoring import volume_confidence, volume_severity
from mamori.detect.windows import threshold

ID = "auth.bruteforce"
KEY = ("src_ip", TARGET, "service")


@dataclass(frozen=True)
class AuthBruteforceParams(Params):
    # Failed logins from one source on one machine and service before it counts as guessing;
    # bruteforce.ssh's default (Zeek's own test value): a person mistyping retries two or three
    # times, a tool tens or thousands.
    password_guesses_limit: int = 10
    # Window over which failures are counted (Zeek's SSH guessing_timeout).
    window_minutes: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.password_guesses_limit < 1 or self.window_minutes <= 0:
            raise ValueError("password_guesses_limit must be >= 1 and window_minutes positive")


@detector(ID, reads="auth", key=("src_ip",), attack=("T1110.001",), params=AuthBruteforceParams)
def auth_bruteforce(auth: pl.LazyFrame, p: AuthBruteforceParams) -> pl.LazyFrame:
    """Source, machine and service with at least ``password_guesses_limit`` guesses in a window."""
    failed = attempts(auth, "failure").sort("ts", "uid")
    hits = threshold(
        failed,
        key=KEY,
        window=timedelta(minutes=p.window_minutes),
        at_least=p.password_guesses_limit,  # rows >= guesses: a cheap first cut
        extra=(guesses(), users()),
        where=pl.col("guesses") >= p.password_guesses_limit,
    )
    n = pl.col("guesses")
    return alerts(
        hits,
        detector_id=ID,
        techniques=("T1110.001",),
        severity=volume_severity(n, p.password_guesses_limit),
        confidence=volume_confidence(n, p.password_guesses_limit, 0.6, 0.99),
        summary=pl.format(
            "{} appears to be guessing {} passwords on {} ({} failed logins, {} user name(s))",
            pl.col("src_ip"),
            pl.when(pl.col("service") == "").then(pl.lit("login")).otherwise(pl.col("service")),
            pl.col(TARGET).fill_null("an unnamed host"),
            n,
            pl.col("users"),
        ),
        src=pl.col("src_ip"),
        dst=pl.col(TARGET),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=n,
        evidence_table="auth",
        evidence=pl.col("uids"),
        key=pl.format(
            "{}|{}|{}", pl.col("src_ip"), pl.col(TARGET).fill_null(""), pl.col("service")
        ),
    )
