"""C2 beaconing: a host checking in with the same destination on a clock, with steady requests.

An implant sleeps, wakes, asks its server for work, and sleeps again; jitter blurs the clock but
cannot hide it over dozens of check-ins. People and most software are bursty instead. Per source
and destination we score the check-ins' inter-arrival times the way RITA does, robustly (a few
missed or extra check-ins must not matter): Bowley's quartile skew (a jittered clock is
symmetric) and the median absolute deviation relative to the median interval (a clock is tight);
plus the steadiness of the request sizes and how many check-ins there were. The mix is a 0-1
score; at or above ``score_threshold`` the pair is reported.

A destination is named as well as the network allows, so CDN address changes and keep-alive
connections do not hide a beacon: an HTTP *request* is one event keyed by its Host header (Caldera
Sandcat beacons over one keep-alive connection), a TLS connection is keyed by its SNI, and any
other connection by address, port and protocol. Each connection feeds exactly one of these series.
Events on a pair within ``burst_seconds`` of the previous one are one check-in (a beacon and the
result it posts, a browser's parallel connections). Not C2, by design: NTP, DHCP, mDNS, LLMNR,
NetBIOS and SSDP (``ignore_ports``), DNS to the site's resolvers, multicast and broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.detectors.scan_trw import unicast
from mamori.detect.windows import at_least, key_hash, time_order

ID = "c2.beaconing"
_PRIVATE = r"(?i)^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|127\.|169\.254\.|f[cd]|fe80:|::1$)"
_TECHNIQUES = {"conn": ["T1071"], "http": ["T1071.001"], "tls": ["T1071.001", "T1573"]}
_PAIR = "__pair"


@dataclass(frozen=True)
class BeaconingParams(Params):
    # Check-ins (after merging bursts) before a pair is judged: fewer intervals say nothing.
    min_connections: int = 8
    # Time from first to last check-in; a short sandbox run cannot show a rhythm.
    min_span_minutes: float = 10.0
    # Score from which a pair is reported (0.8: a 60 s clock with ±50 % jitter scores ~0.86,
    # Poisson arrivals with perfectly steady sizes ~0.65).
    score_threshold: float = 0.8
    # Events closer than this to the previous one on the same pair belong to the same check-in.
    burst_seconds: float = 2.0
    # Check-ins at which the count part of the score saturates (RITA weighs count too).
    full_connections: int = 24
    # Series are cut into tumbling windows of this length (RITA scores one day at a time).
    window_hours: float = 24.0
    # Periodic by nature, never C2 here: DHCP, NTP, NetBIOS, SSDP, mDNS, LLMNR.
    ignore_ports: tuple[int, ...] = (67, 68, 123, 137, 138, 1900, 5353, 5355)
    # The site's DNS resolvers: port 53 to them is ignored. Empty: any private-address resolver.
    # DNS straight to an Internet server on a clock stays in scope (DNS tunnelling C2).
    resolvers: tuple[str, ...] = ()
    # Destinations (addresses or names) never reported, e.g. an in-house monitoring server.
    ignore_destinations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_connections < 4 or self.min_span_minutes < 0 or self.burst_seconds < 0:
            raise ValueError("need min_connections >= 4 and non-negative span and burst")
        if not 0 < self.score_threshold <= 1 or self.full_connections < 1 or self.window_hours <= 0:
            raise ValueError("need 0 < score_threshold <= 1, full_connections >= 1, window > 0")


def _spread(q1: pl.Expr, med: pl.Expr, q3: pl.Expr, mad: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(1 - |Bowley skew|, 1 - 2·MAD/median), each in [0, 1]: symmetric, tight values score 1.
    Twice the MAD: at half the median (exponential gaps, i.e. random arrivals) nothing is left.
    Skew is only read off a material spread (IQR >= 5 % of the median): a clock rounded to the
    millisecond (5.187, 5.188, ...) would otherwise have a Bowley skew of ±1.

    Takes the quartiles and the median absolute deviation as already aggregated columns: flat
    aggregations over a whole frame run as one vectorised pass, where nested expressions inside a
    ``group_by().agg`` would be evaluated group by group."""
    bowley = (q3 + q1 - 2 * med) / pl.max_horizontal(q3 - q1, 0.05 * med.abs(), pl.lit(1e-9))
    madm = pl.when(med > 0).then(1 - 2 * mad / med).when(mad == 0).then(1.0).otherwise(0.0)
    return (1 - bowley.abs()).clip(0.0, 1.0), madm.clip(0.0, 1.0)


def _quartiles(col: str) -> list[pl.Expr]:
    c = pl.col(col)
    return [
        c.quantile(0.25, "linear").alias(f"{col}_q1"),
        c.median().alias(f"{col}_med"),
        c.quantile(0.75, "linear").alias(f"{col}_q3"),
    ]


def _enough(conn: pl.LazyFrame, p: BeaconingParams) -> pl.LazyFrame:
    """The connections of plain-connection pairs (source, address, port, protocol, window) with
    at least ``min_connections`` rows: a pair with fewer events cannot have that many check-ins,
    and most of a day's pairs have one or two (:func:`windows.at_least`)."""
    every = f"{int(timedelta(hours=p.window_hours).total_seconds() * 1_000_000)}us"
    pair = ["orig_h", "resp_h", "resp_p", "proto", pl.col("ts").dt.truncate(every)]
    return at_least(conn, key=pair, rows=p.min_connections)


def _events(
    conn: pl.LazyFrame, http: pl.LazyFrame, ssl: pl.LazyFrame, p: BeaconingParams | None = None
) -> pl.LazyFrame:
    """One row per event: HTTP requests by Host, TLS connections by SNI, other connections.

    With ``p``, plain connections of pairs too small to be judged are left out (:func:`_enough`).
    """
    cols = ["orig_h", "resp_h", "resp_p", "proto", "ts", "uid", "kind", "dst", "size"]
    # Only the columns used, named before the branches: the pre-filter's join would otherwise
    # carry every column of the table to the end of the plan.
    conn = conn.select("orig_h", "resp_h", "resp_p", "proto", "ts", "uid", "orig_bytes")
    named = ssl.filter(pl.col("server_name").is_not_null()).select("uid", "server_name")
    named = named.unique("uid", keep="first").join(
        http.select("uid").unique(), on="uid", how="anti"
    )
    host = pl.col("host").str.to_lowercase().str.replace(r":\d+$", "")
    req = http.with_columns(
        proto=pl.lit("tcp"),
        kind=pl.lit("http"),
        dst=pl.coalesce(host, pl.col("resp_h")),
        size=pl.col("request_body_len").cast(pl.Float64),
    ).select(cols)
    tls = conn.join(named, on="uid").with_columns(
        kind=pl.lit("tls"),
        dst=pl.col("server_name").str.to_lowercase(),
        size=pl.col("orig_bytes").cast(pl.Float64),
    )
    plain = conn if p is None else _enough(conn, p)
    other = plain.join(http.select("uid"), on="uid", how="anti").join(named, on="uid", how="anti")
    other = other.with_columns(
        kind=pl.lit("conn"),
        dst=pl.format("{}:{}/{}", "resp_h", "resp_p", "proto"),
        size=pl.col("orig_bytes").cast(pl.Float64),
    )
    return pl.concat([req, tls.select(cols), other.select(cols)], how="vertical_relaxed")


def _wanted(p: BeaconingParams) -> pl.Expr:
    """Events that could be C2: not a periodic infrastructure service, not the site resolver.

    Run on every event of the day (6.4 M of a 10 M-record day): the private-address pattern is
    matched case-insensitively rather than on a lower-cased copy of every address (0.67 ->
    0.32 s there), and an empty ignore list costs no test."""
    resolver = (
        pl.col("resp_h").is_in(list(p.resolvers))
        if p.resolvers
        else pl.col("resp_h").str.contains(_PRIVATE)
    )
    wanted = (
        unicast()
        & ~pl.col("resp_p").is_in(list(p.ignore_ports))
        & ~((pl.col("resp_p") == 53) & resolver)
    )
    if p.ignore_destinations:
        ignored = list(p.ignore_destinations)
        wanted = wanted & ~pl.col("dst").is_in(ignored) & ~pl.col("resp_h").is_in(ignored)
    return wanted


@detector(ID, reads=("conn", "http", "ssl"), key=("orig_h",), attack=("T1071", "T1573"),
          params=BeaconingParams, heavy=True)  # fmt: skip
def beaconing(
    conn: pl.LazyFrame, http: pl.LazyFrame, ssl: pl.LazyFrame, p: BeaconingParams
) -> pl.LazyFrame:
    """Source/destination pairs whose check-ins are regular, steady and many enough."""
    every = f"{int(timedelta(hours=p.window_hours).total_seconds() * 1_000_000)}us"
    names, order = ["orig_h", "kind", "dst"], ["ts", "uid"]
    window = pl.col("ts").dt.truncate(every)
    # A pair is keyed by a 64-bit hash of its four columns: sorting the ~6.4 M events of a 10 M-
    # record day by three text keys, and grouping by them again at every step, cost the detector
    # 12.8 s there against 10.2 s now (peak 3.0 against 2.6 GB); its names are looked up only for
    # the pairs that scored. Within a pair the order is (time, uid) as before, so check-ins,
    # intervals and scores are the same; two pairs sharing a hash (about k^2 / 2^65 for k
    # pairs: 3e-8 for a million) would be judged as one.
    pair = [_PAIR]
    # One global sort puts each pair's events together and in time order, so "the previous event
    # of the same pair" is simply the previous row when the pair did not change.
    same = pl.col(_PAIR) == pl.col(_PAIR).shift(1)
    gap = pl.col("ts").diff().dt.total_microseconds() / 1e6
    ev = (
        _events(conn, http, ssl, p)
        # Tested as a column of the (few) events: as a plain filter the optimiser pushes it down
        # the branches onto every row of the conn table (in the TLS and the other-connection
        # branch each), where its text tests cost more than the rest of the events (measured).
        .with_columns(_wanted=_wanted(p))
        .filter("_wanted")
        .select(
            "orig_h",
            "kind",
            "dst",
            "ts",
            "uid",
            "resp_h",
            "size",
        )
        # The window is in the pair's hash, not a column: no alert reads it (6.4 M rows, 49 MB).
        .with_columns(key_hash([*names, window]).alias(_PAIR))
        # Collected as the plan is built: check-ins and the scored pairs' names and evidence
        # both read it, and the sort below is NumPy's, which a lazy plan could only reach
        # through a Python callback (measured: the plan then lost its parallelism, 2 s more).
        .collect()
    )
    # Only what the check-ins need is sorted: the names and the rest are read from the unsorted
    # events for the pairs that scored (the detector on the 10 M-record day: 10.55 -> 10.2 s,
    # peak 2.5 -> 2.3 GB).
    ordered = (
        _in_pair_order(ev.select(_PAIR, *order, "size", "resp_h"))
        .lazy()
        .with_columns(checkin=~same.fill_null(False) | (gap > p.burst_seconds))
    )
    ev = ev.select(_PAIR, *names, *order)  # what the evidence needs: the rest is freed now
    # A check-in's size is its first request's (the beacon's); its interval is the time since the
    # pair's previous check-in (null for the pair's first).
    first = (
        ordered.filter("checkin")
        .select(_PAIR, "ts", "size", "resp_h", iv=pl.when(same.fill_null(False)).then(gap))
        .cache()
    )
    # Only pairs that can pass the count and span tests are scored (most pairs of a day's traffic
    # have a few check-ins).
    counted = (
        first.group_by(pair)
        .agg(n=pl.len(), first_seen=pl.col("ts").min(), last_seen=pl.col("ts").max())
        .filter(
            (pl.col("n") >= p.min_connections)
            & (pl.col("last_seen") - pl.col("first_seen") >= timedelta(minutes=p.min_span_minutes))
        )
    )
    judged = first.join(counted.select(pair), on=pair, how="semi").cache()
    quartiles = judged.group_by(pair).agg(
        *_quartiles("iv"),
        *_quartiles("size"),
        sizes=pl.col("size").count(),
        hosts=pl.col("resp_h").unique(),
    )
    # The median absolute deviations need the medians first: a second flat aggregation.
    mads = (
        judged.join(quartiles.select(*pair, "iv_med", "size_med"), on=pair)
        .group_by(pair)
        .agg(
            iv_mad=(pl.col("iv") - pl.col("iv_med")).abs().median(),
            size_mad=(pl.col("size") - pl.col("size_med")).abs().median(),
        )
    )
    skew, madm = _spread(*(pl.col(f"iv_{s}") for s in ("q1", "med", "q3", "mad")))
    size_skew, size_madm = _spread(*(pl.col(f"size_{s}") for s in ("q1", "med", "q3", "mad")))
    size = pl.when(pl.col("sizes") > 0).then((size_skew + size_madm) / 2).otherwise(0.5)
    scored = (
        counted.join(quartiles, on=pair)
        .join(mads, on=pair)
        .with_columns(interval=pl.col("iv_med"), timing=(skew + madm) / 2, steady=size)
        .with_columns(
            # Rounded: parallel aggregation may sum in a different order from run to run, and the
            # last bit must not decide whether two runs agree (or whether a threshold is crossed).
            score=(
                0.6 * pl.col("timing")
                + 0.2 * pl.col("steady")
                + 0.2 * pl.min_horizontal(pl.lit(1.0), pl.col("n") / p.full_connections)
            ).round(6)
        )
        .filter(pl.col("score") >= p.score_threshold)
        .collect()
    )
    # The pair's names and evidence only for the (few) pairs that scored. Sorted inside the
    # aggregation: a group_by does not promise to keep the frame's row order. Collected too, so
    # the plan handed back holds these few rows, not the day's events, while the engine's other
    # lane runs on beside it (with the narrower events above, the 10 M-record day's live peak
    # went from 2.55-2.93 to 2.46-2.57 GB).
    uids = (
        ev.lazy()
        .join(scored.lazy().select(pair), on=pair, how="semi")
        .group_by(pair)
        .agg(
            *(pl.col(c).first() for c in names),
            uids=pl.col("uid").sort_by(order).unique(maintain_order=True),
        )
        .collect()
    )
    found = scored.lazy().join(uids.lazy(), on=pair, how="left")
    score = pl.col("score")
    return alerts(
        found,
        detector_id=ID,
        techniques=_techniques(),
        severity=pl.when(score >= 0.95)
        .then(pl.lit("high"))
        .when(score >= 0.9)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low")),
        confidence=score,
        summary=pl.format(
            "{} beacons to {} ({} check-ins, every ~{} s, score {})",
            "orig_h",
            "dst",
            "n",
            pl.col("interval").round(0).cast(pl.Int64),
            score.round(2),
        ),
        src=pl.col("orig_h"),
        dst=pl.when(pl.col("hosts").list.len() == 1).then(pl.col("hosts").list.first()),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="conn",  # http and ssl records carry the same connection uids
        evidence=pl.col("uids"),
        key=pl.format("{}|{}|{}", "orig_h", "kind", "dst"),
    )


def _in_pair_order(events: pl.DataFrame) -> pl.DataFrame:
    """The events' pair, time, size and address in (pair, time, uid) order (a null time last),
    by :func:`windows.time_order`: the frame's own three-column sort took 2.0 s of the
    detector's 9 on bench_detect's 10 M-record day, the two integer keys 0.8."""
    ts = events["ts"].dt.epoch("us").fill_null(np.iinfo(np.int64).max).to_numpy()
    order = time_order(events[_PAIR].to_numpy(), ts, events["uid"])
    return events.select(pl.exclude("uid"))[order]


def _techniques() -> pl.Expr:
    """ATT&CK per destination kind: web protocols for HTTP, plus encrypted channel for TLS."""
    out = pl.lit(_TECHNIQUES["conn"], dtype=pl.List(pl.String))
    for kind in ("http", "tls"):
        out = pl.when(pl.col("kind") == kind).then(pl.lit(_TECHNIQUES[kind])).otherwise(out)
    return out
