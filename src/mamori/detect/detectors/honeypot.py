"""Honeypot attackers: every source that talks to a honeypot, summarised per attacker.

Nobody has a legitimate reason to log in to a honeypot, so there is no threshold to cross: one
alert per source and window says what it did (sessions, credentials tried, commands run, files it
tried to download, connections it tried to tunnel through the honeypot), with the techniques that
behaviour shows. Its severity reflects what the attacker would have achieved on a real host:
commands and downloads are hands-on-keyboard, guessing alone is background noise of the Internet.
The download URLs' host names become the alert's domains, which a resolver sinkhole can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

# Client chatter (versions, key exchange, terminal size) says nothing about intent.
_QUIET = ("cowrie.client.", "cowrie.log.")


@dataclass(frozen=True)
class HoneypotParams(Params):
    # One alert per attacker per this many hours (a week-long campaign is several alerts,
    # merged by the engine's suppression into one per its interval).
    window_hours: float = 24.0
    # Confidence that the source is hostile: it talked to a honeypot.
    confidence: float = 0.9


def _count(event: str) -> pl.Expr:
    return (pl.col("event") == event).sum()


@detector(
    "honeypot.attacker",
    reads="honeypot",
    key=("src_ip",),
    attack=("T1110.001", "T1059.004", "T1105", "T1090", "T1595"),
    params=HoneypotParams,
)
def honeypot_attacker(honeypot: pl.LazyFrame, p: HoneypotParams) -> pl.LazyFrame:
    """Each source that interacted with a honeypot, with what it did."""
    events = honeypot.filter(
        pl.col("src_ip").is_not_null()
        & ~pl.any_horizontal(pl.col("event").str.starts_with(q) for q in _QUIET)
    )
    hits = threshold(
        events,
        key=("src_ip",),
        window=timedelta(hours=p.window_hours),
        at_least=1,
        extra=(
            pl.col("session").n_unique().alias("sessions"),
            _count("cowrie.login.failed").alias("failed"),
            _count("cowrie.login.success").alias("accepted"),
            pl.col("username").drop_nulls().n_unique().alias("users"),
            pl.col("input").drop_nulls().alias("commands"),
            pl.col("url").drop_nulls().unique().sort().alias("urls"),
            pl.col("event").str.starts_with("cowrie.direct-tcpip.request").sum().alias("tunnels"),
            pl.col("host").drop_nulls().first().alias("sensor"),
            pl.col("dst_ip")
            .filter(pl.col("event") == "cowrie.session.connect")
            .drop_nulls()
            .first()
            .alias("honeypot_ip"),
        ),
    )
    did = {
        "T1110.001": pl.col("failed") + pl.col("accepted") > 0,
        "T1059.004": pl.col("commands").list.len() > 0,
        "T1105": pl.col("urls").list.len() > 0,
        "T1090": pl.col("tunnels") > 0,
    }
    techniques = pl.concat_list(
        [pl.when(cond).then(pl.lit(t)) for t, cond in did.items()]
        + [pl.when(~pl.any_horizontal(list(did.values()))).then(pl.lit("T1595"))]
    ).list.drop_nulls()
    hands_on = did["T1059.004"] | did["T1105"]
    url_host = (
        pl.col("urls")
        .list.eval(pl.element().str.extract(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#\[\]]+)", 1))
        .list.eval(pl.element().filter(~pl.element().str.contains(r"^[0-9.]+$")))
    )
    return alerts(
        hits,
        detector_id="honeypot.attacker",
        techniques=techniques,
        severity=pl.when(hands_on).then(pl.lit("medium")).otherwise(pl.lit("low")),
        confidence=p.confidence,
        summary=pl.format(
            "{} attacked honeypot {}: {} session(s), {} failed and {} accepted login(s) "
            "({} user name(s)), {} command(s), {} download(s), {} tunnel request(s)",
            pl.col("src_ip"),
            pl.coalesce("sensor", "honeypot_ip", pl.lit("?")),
            pl.col("sessions"),
            pl.col("failed"),
            pl.col("accepted"),
            pl.col("users"),
            pl.col("commands").list.len(),
            pl.col("urls").list.len(),
            pl.col("tunnels"),
        ),
        src=pl.col("src_ip"),
        dst=pl.col("honeypot_ip"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="honeypot",
        evidence=pl.col("uids"),
        key=pl.col("src_ip"),
        domains=url_host,
    )
