"""FTP password guessing: one source collecting ``530`` replies to ``PASS`` from one server.

A wrong password is answered ``530 Login incorrect``; a person mistyping retries once or twice, a
guessing tool hundreds of times. Failures are counted per source and server (the FTP equivalent of
Zeek's SSH ``detect-bruteforcing``), so one noisy client of a busy server is not blamed for the
others. Many distinct user names in the same burst are password spraying (T1110.003).

This needs ``PASS`` rows in ftp.log, which Zeek writes when ``PASS`` is in ``FTP::logged_commands``
(its own ``ftp-password-pass-command`` test does so); mamori's FTP analyser logs Zeek's default
command set, without ``PASS``, so on mamori-ingested captures failed FTP logins are only visible
at the connection level (``bruteforce.service`` counts short FTP control sessions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.scoring import guessing_or_spraying, volume_confidence, volume_severity
from mamori.detect.windows import threshold

ID = "bruteforce.ftp"
KEY = ("orig_h", "resp_h")


@dataclass(frozen=True)
class FtpBruteforceParams(Params):
    # Failed FTP logins (530 to PASS) from one source to one server before it counts as guessing;
    # the same default as bruteforce.ssh, since both are interactive-login services.
    password_guesses_limit: int = 10
    # Window over which failures are counted (Zeek's SSH guessing_timeout, reused).
    guessing_timeout_minutes: float = 30.0
    # Distinct user names within one alert that make it spraying (T1110.003) rather than
    # guessing one account's password (T1110.001).
    spray_users: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.password_guesses_limit < 1 or self.guessing_timeout_minutes <= 0:
            raise ValueError("password_guesses_limit must be >= 1 and the timeout positive")


@detector(
    ID, reads="ftp", key=("orig_h",), attack=("T1110.001", "T1110.003"), params=FtpBruteforceParams
)
def ftp_bruteforce(ftp: pl.LazyFrame, p: FtpBruteforceParams) -> pl.LazyFrame:
    """Source/server pairs with at least ``password_guesses_limit`` rejected passwords in a window."""
    window = timedelta(minutes=p.guessing_timeout_minutes)
    every = f"{int(window.total_seconds() * 1_000_000)}us"
    failed = ftp.filter(
        (pl.col("command").str.to_uppercase() == "PASS") & (pl.col("reply_code") == 530)
    ).sort("ts", "uid")  # ties in ts broken by uid: evidence order must not follow row order
    hits = threshold(failed, key=KEY, window=window, at_least=p.password_guesses_limit)
    users = failed.group_by(*KEY, window=pl.col("ts").dt.truncate(every)).agg(
        users=pl.col("user").drop_nulls().n_unique()
    )
    hits = hits.join(users, on=[*KEY, "window"], how="left")
    many = pl.col("users") >= p.spray_users
    return alerts(
        hits,
        detector_id=ID,
        techniques=guessing_or_spraying(many),
        severity=volume_severity(pl.col("n"), p.password_guesses_limit),
        confidence=volume_confidence(pl.col("n"), p.password_guesses_limit, 0.6, 0.99),
        summary=pl.format(
            "{} appears to be {} FTP passwords on {} ({} rejected logins, {} user name(s))",
            pl.col("orig_h"),
            pl.when(many).then(pl.lit("spraying")).otherwise(pl.lit("guessing")),
            pl.col("resp_h"),
            pl.col("n"),
            pl.col("users"),
        ),
        src=pl.col("orig_h"),
        dst=pl.col("resp_h"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="ftp",
        evidence=pl.col("uids").list.unique(maintain_order=True),
        key=pl.format("{}|{}", pl.col("orig_h"), pl.col("resp_h")),
    )
