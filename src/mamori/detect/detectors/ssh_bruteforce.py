"""SSH password guessing: one source failing to log in over many connections.

Zeek's ``detect-bruteforcing`` policy, as a mamori detector: connections whose authentication the
SSH analyser inferred as failed are counted per originator in a window; reaching the limit raises
one alert naming the servers tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.scoring import volume_confidence, volume_severity
from mamori.detect.windows import threshold


@dataclass(frozen=True)
class SshBruteforceParams(Params):
    # Failed SSH logins (connections) from one source before it counts as guessing. Zeek's
    # default is 30; 10 (what Zeek's own test uses) also catches short bursts.
    password_guesses_limit: int = 10
    # Window over which failures are counted (Zeek's guessing_timeout).
    guessing_timeout_minutes: float = 30.0


@detector(
    "bruteforce.ssh",
    reads="ssh",
    key=("orig_h",),
    attack=("T1110.001",),
    params=SshBruteforceParams,
)
def ssh_bruteforce(ssh: pl.LazyFrame, p: SshBruteforceParams) -> pl.LazyFrame:
    """Sources with at least ``password_guesses_limit`` failed SSH logins in the window."""
    failed = ssh.filter(pl.col("auth_success") == False)  # noqa: E712  (null = unknown, not failed)
    hits = threshold(
        failed,
        key=("orig_h",),
        window=timedelta(minutes=p.guessing_timeout_minutes),
        at_least=p.password_guesses_limit,
    ).join(
        failed.group_by("orig_h").agg(servers=pl.col("resp_h").unique().sort()),
        on="orig_h",
        how="left",
    )
    return alerts(
        hits,
        detector_id="bruteforce.ssh",
        techniques=("T1110.001",),
        severity=volume_severity(pl.col("n"), p.password_guesses_limit),
        confidence=volume_confidence(pl.col("n"), p.password_guesses_limit, 0.6, 0.99),
        summary=pl.format(
            "{} appears to be guessing SSH passwords ({} failed logins on {} server(s))",
            pl.col("orig_h"),
            pl.col("n"),
            pl.col("servers").list.len(),
        ),
        src=pl.col("orig_h"),
        dst=pl.when(pl.col("servers").list.len() == 1).then(pl.col("servers").list.first()),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="ssh",
        evidence=pl.col("uids"),
        key=pl.col("orig_h"),
    )
