"""Password spraying: one source trying many accounts, each only a few times.

Spraying stays under per-account lockout limits by trying one or two common passwords against
many user names, so no single account looks attacked; what gives it away is the breadth. Guesses
and distinct user names are counted per source over every machine and service it tried in a
window (a spray often walks a whole domain or subnet); many names with few guesses each is
spraying. A source hammering one account is ``auth.bruteforce``'s, not this detector's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.detectors._auth import TARGET, attempts, guesses, users
from mamori.detect.windows import threshold

ID = "auth.spraying"


@dataclass(frozen=True)
class AuthSprayingParams(Params):
    # Distinct user names one source must try in the window; the same as the network
    # brute-force detectors' spray_users.
    spray_users: int = 5
    # At most this many guesses per user name on average: more is guessing an account's password.
    max_guesses_per_user: float = 3.0
    # Window over which names and guesses are counted; sprays are slow on purpose, so longer
    # than the brute-force window.
    window_minutes: float = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.spray_users < 2 or self.max_guesses_per_user < 1 or self.window_minutes <= 0:
            raise ValueError(
                "spray_users must be >= 2, max_guesses_per_user >= 1, window_minutes positive"
            )


@detector(ID, reads="auth", key=("src_ip",), attack=("T1110.003",), params=AuthSprayingParams)
def auth_spraying(auth: pl.LazyFrame, p: AuthSprayingParams) -> pl.LazyFrame:
    """Sources trying at least ``spray_users`` names, ``max_guesses_per_user`` or fewer each."""
    failed = attempts(auth, "failure").filter(pl.col("user").is_not_null()).sort("ts", "uid")
    hits = threshold(
        failed,
        key=("src_ip",),
        window=timedelta(minutes=p.window_minutes),
        at_least=p.spray_users,
        distinct="user",
        extra=(
            guesses(),
            users(),
            pl.col(TARGET).drop_nulls().unique().sort().alias("targets"),
            pl.col("service").unique().sort().alias("services"),
        ),
        where=pl.col("guesses") <= p.max_guesses_per_user * pl.col("users"),
    )
    targets = pl.col("targets").list.len()
    return alerts(
        hits,
        detector_id=ID,
        techniques=("T1110.003",),
        # Breadth is the danger: twice the names is as bad as a brute force at ten times.
        severity=pl.when(pl.col("users") >= 4 * p.spray_users)
        .then(pl.lit("high"))
        .otherwise(pl.lit("medium")),
        confidence=pl.min_horizontal(
            pl.lit(0.95), 0.6 + 0.3 * (pl.col("users") / p.spray_users - 1) / 3
        ),
        summary=pl.format(
            "{} appears to be spraying passwords over {} user names on {} machine(s) "
            "({} guesses, {} service(s): {})",
            pl.col("src_ip"),
            pl.col("users"),
            targets,
            pl.col("guesses"),
            pl.col("services").list.len(),
            pl.col("services").list.join(", "),
        ),
        src=pl.col("src_ip"),
        dst=pl.when(targets == 1).then(pl.col("targets").list.first()),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("guesses"),
        evidence_table="auth",
        evidence=pl.col("uids"),
        key=pl.col("src_ip"),
    )
