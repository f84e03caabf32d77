"""Port scans and host sweeps by Threshold Random Walk (Jung, Paxson, Berger, Balakrishnan 2004).

A counter ("N ports in M minutes") is slow against careful scanners and noisy against busy
clients. TRW asks instead whether a source's *first contacts* (its first connection to each
distinct service: host, port and protocol) are answered the way a benign client's are. A scanner
guesses, so most of its guesses fail; a client mostly connects to services that exist. Each first
contact moves a log-likelihood ratio up (no answer) or down (answered); Wald's sequential test
declares a scanner at the first crossing of log(PD/PF), benign at log((1-PD)/(1-PF)), whichever
comes first, so masscan is caught after a handful of probes and a browser is cleared as fast.

One walk per source over (host, port) pairs covers both shapes: one host and many ports is a
vertical port scan (``dst`` is that host), one port on many hosts a horizontal sweep. A single
walk also means one alert per scanner rather than one per host or per port of a mixed scan.
Walks restart in each tumbling window, so a verdict is never permanent: a host cleared as benign
can still be caught in the next window if it starts scanning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import EVIDENCE_MAX, Params, alerts, detector

_TARGET = ("resp_h", "resp_p", "proto")


@dataclass(frozen=True)
class ScanTrwParams(Params):
    # P(first contact answered | benign source): Jung et al.'s θ0.
    theta_benign: float = 0.8
    # P(first contact answered | scanner): θ1; most of a scanner's guesses find nothing.
    theta_scanner: float = 0.2
    # Wanted detection probability PD and false-positive probability PF; they set the walk's
    # thresholds (with the defaults, 4 more unanswered than answered first contacts = a scanner).
    detection_probability: float = 0.99
    false_positive_probability: float = 0.01
    # Fewer distinct services than this in a window is never reported, whatever the walk says:
    # a laptop finding four dead services is not worth an analyst's time.
    min_targets: int = 5
    # Walks restart in each tumbling window (state expiry, as in Zeek's scan policy).
    window_minutes: float = 15.0

    def __post_init__(self) -> None:
        if not 0 < self.theta_scanner < self.theta_benign < 1:
            raise ValueError("need 0 < theta_scanner < theta_benign < 1")
        if not 0 < self.false_positive_probability < self.detection_probability < 1:
            raise ValueError("need 0 < false_positive_probability < detection_probability < 1")
        if self.min_targets < 1 or self.window_minutes <= 0:
            raise ValueError("min_targets must be >= 1 and window_minutes > 0")


def answered() -> pl.Expr:
    """The responder answered: SYN-ACK, ACK or data from it (Zeek history h/H/a/d), or a UDP
    reply. S0, REJ (a RST is a refusal, not a service), RSTOS0 and silent OTH are failures."""
    by_history = pl.col("history").fill_null("").str.contains("[hHad]")
    return by_history | ((pl.col("proto") == "udp") & (pl.col("resp_pkts").fill_null(0) > 0))


def unicast() -> pl.Expr:
    """Multicast and broadcast destinations never answer as a connection (mDNS, SSDP, LLMNR,
    NetBIOS): counting them would make every Windows desktop a scanner."""
    h = pl.col("resp_h").str.to_lowercase()
    first_octet = h.str.extract(r"^(\d+)\.\d+\.\d+\.\d+$").cast(pl.Int32)
    return ~(first_octet.is_between(224, 239) | h.str.ends_with(".255") | h.str.starts_with("ff"))


@detector("scan.trw", reads="conn", key=("orig_h",), attack=("T1046",), params=ScanTrwParams)
def scan_trw(conn: pl.LazyFrame, p: ScanTrwParams) -> pl.LazyFrame:
    """Sources whose first contacts to distinct services walk past TRW's scanner threshold."""
    up = math.log(p.detection_probability / p.false_positive_probability)
    down = math.log((1 - p.detection_probability) / (1 - p.false_positive_probability))
    on_fail = math.log((1 - p.theta_scanner) / (1 - p.theta_benign))
    on_success = math.log(p.theta_scanner / p.theta_benign)
    every = f"{int(timedelta(minutes=p.window_minutes).total_seconds() * 1_000_000)}us"
    walk = ("orig_h", "window")
    order = ["ts", "uid"]  # uid breaks ties: the walk must not depend on row order
    first = (
        conn.filter(pl.col("proto").is_in(["tcp", "udp"]) & unicast())
        .with_columns(window=pl.col("ts").dt.truncate(every), ok=answered())
        .sort(order)
        .unique(subset=[*walk, *_TARGET], keep="first", maintain_order=True)
        .with_columns(
            llr=pl.when("ok")
            .then(on_success)
            .otherwise(on_fail)
            .cum_sum()
            .over(walk, order_by=order),
            n=pl.int_range(1, pl.len() + 1).over(walk, order_by=order),
        )
    )
    found = (
        first.group_by(walk)
        .agg(
            hit=pl.col("n").filter(pl.col("llr") >= up).min(),
            clear=pl.col("n").filter(pl.col("llr") <= down).min(),
            targets=pl.len(),
            failed=(~pl.col("ok")).sum(),
            hosts=pl.col("resp_h").n_unique(),
            ports=pl.col("resp_p").n_unique(),
            host=pl.col("resp_h").first(),
            port=pl.col("resp_p").first(),
            first_seen=pl.col("ts").min(),
            last_seen=pl.col("ts").max(),
        )
        .filter(
            pl.col("hit").is_not_null()
            & (pl.col("clear").is_null() | (pl.col("hit") < pl.col("clear")))
            & (pl.col("targets") >= p.min_targets)
        )
    )
    # Evidence lists only for the walks that crossed (a list per walk of every source would hold
    # every first contact of the day).
    uids = (
        first.join(found.select(walk), on=walk, how="semi", nulls_equal=True)
        .group_by(walk)
        .agg(uids=pl.col("uid").sort_by(order))
    )
    found = found.join(uids, on=walk, how="left", nulls_equal=True)
    src, n, failed = pl.col("orig_h"), pl.col("targets"), pl.col("failed")
    port_scan = pl.col("hosts") == 1
    shape = (
        pl.when(port_scan)
        .then(pl.format("scanned {} ports on {}", n, pl.col("host")))
        .when(pl.col("ports") == 1)
        .then(pl.format("swept port {} on {} hosts", pl.col("port"), pl.col("hosts")))
        .otherwise(
            pl.format(
                "probed {} services ({} ports, {} hosts)", n, pl.col("ports"), pl.col("hosts")
            )
        )
    )
    return alerts(
        found,
        detector_id="scan.trw",
        techniques=("T1046",),
        severity=pl.when(n >= 500)
        .then(pl.lit("high"))
        .when(n >= 50)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low")),
        # TRW already bounds the error; what is left is how much evidence there is beyond it.
        confidence=0.6 + 0.39 * (failed / n) * pl.min_horizontal(pl.lit(1.0), n / 100),
        summary=pl.format("{} {} ({} unanswered)", src, shape, failed),
        src=src,
        dst=pl.when(port_scan).then(pl.col("host")),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=n,
        evidence_table="conn",
        # The crossing itself must be in the evidence even when it came late in the window.
        evidence=pl.col("uids").list.slice(pl.max_horizontal(pl.col("hit") - EVIDENCE_MAX, 0)),
        key=src,
    )
