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
_MULTICAST4 = [f"{octet}." for octet in range(224, 240)]


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
    NetBIOS): counting them would make every Windows desktop a scanner.

    Read off the text's first characters, not a regular expression: the lake holds canonical
    addresses (dotted quads without leading zeros, lower-case IPv6), so an IPv4 multicast address
    is exactly one starting "224." to "239.", and this runs on every destination of the day."""
    h = pl.col("resp_h")
    multicast4 = h.str.head(4).is_in(_MULTICAST4)
    multicast6 = h.str.head(2).str.to_lowercase() == "ff"
    return ~(multicast4 | h.str.ends_with(".255") | multicast6)


@detector("scan.trw", reads="conn", key=("orig_h",), attack=("T1046",), params=ScanTrwParams)
def scan_trw(conn: pl.LazyFrame, p: ScanTrwParams) -> pl.LazyFrame:
    """Sources whose first contacts to distinct services walk past TRW's scanner threshold."""
    up = math.log(p.detection_probability / p.false_positive_probability)
    down = math.log((1 - p.detection_probability) / (1 - p.false_positive_probability))
    on_fail = math.log((1 - p.theta_scanner) / (1 - p.theta_benign))
    on_success = math.log(p.theta_scanner / p.theta_benign)
    every = f"{int(timedelta(minutes=p.window_minutes).total_seconds() * 1_000_000)}us"
    walk = ["orig_h", "window"]
    order = ["ts", "uid"]  # uid breaks ties: the walk must not depend on row order
    # One global sort puts every walk's first contacts together and in order; the walk itself is
    # then running counts over the whole frame, restarted where a walk begins. The log-likelihood
    # is a·on_success + f·on_fail for a answered and f unanswered contacts so far: integer counts,
    # so the crossing does not depend on how a float sum was rounded.
    first = (
        conn.filter(pl.col("proto").is_in(["tcp", "udp"]) & unicast())
        .select(
            *_TARGET, "ts", "uid", "orig_h", window=pl.col("ts").dt.truncate(every), ok=answered()
        )
        .sort([*walk, *order], nulls_last=True)
        .filter(pl.struct(*walk, *_TARGET).is_first_distinct())
        .cache()  # the walk and the details below read it: sort once
    )
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    starts = (row == 0) | pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in walk)
    fails = (~pl.col("ok")).cast(pl.Int64)
    steps = (
        first.with_columns(start=starts, fails=fails.cum_sum(), row=row)
        .with_columns(
            n=pl.col("row") - pl.when("start").then(pl.col("row")).forward_fill() + 1,
            f=pl.col("fails") - pl.when("start").then(pl.col("fails") - fails).forward_fill(),
        )
        .cache()
    )
    llr = (pl.col("n") - pl.col("f")) * on_success + pl.col("f") * on_fail
    # Wald's test stops at the first bound crossed: a walk is a scanner's when that is the upper.
    crossed = (
        steps.filter((llr >= up) | (llr <= down))
        .filter(pl.struct(walk).is_first_distinct())
        .filter(llr >= up)
        .select(*walk, hit="n")
    )
    ends = steps.filter(pl.col("start").shift(-1, fill_value=True)).select(*walk, targets="n")
    found = crossed.join(ends, on=walk, nulls_equal=True).filter(pl.col("targets") >= p.min_targets)
    # Only the walks that crossed get their details and evidence lists.
    found = found.join(
        first.join(found.select(walk), on=walk, how="semi", nulls_equal=True)
        .group_by(walk)
        .agg(
            failed=(~pl.col("ok")).sum(),
            hosts=pl.col("resp_h").n_unique(),
            ports=pl.col("resp_p").n_unique(),
            host=pl.col("resp_h").sort_by(order).first(),
            port=pl.col("resp_p").sort_by(order).first(),
            first_seen=pl.col("ts").min(),
            last_seen=pl.col("ts").max(),
            uids=pl.col("uid").sort_by(order),
        ),
        on=walk,
        nulls_equal=True,
    )
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
