"""Direct floods on one victim: SYN, UDP and ICMP floods (ATT&CK T1498.001, SYN also T1499.001).

A flood is traffic the victim cannot or does not answer: half-open TCP (the originator never ACKs,
so each SYN pins state on the victim), UDP that draws no reply, and ICMP echo requests. Counted per
victim (the responder: a bare SYN is never role-flipped) and vector in a tumbling window, it is a
flood when it comes from many sources (spoofed or botnet) or, from few sources, at a high packet
rate on few ports (many ports from few sources is a port scan, the scan detectors' business).
Answered traffic never counts, so a busy server or resolver stays quiet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import EVIDENCE_MAX, Params, alerts, detector
from mamori.detect.windows import threshold

DETECTOR_ID = "ddos.flood"


@dataclass(frozen=True)
class FloodParams(Params):
    # Tumbling window the traffic is counted in; one alert per victim, vector and window.
    window_seconds: float = 60.0
    # Distinct sources that make unanswered traffic a distributed (or spoofed) flood ...
    min_sources: int = 50
    # ... provided it is also this many packets (a handful of probes from 50 scanners is noise).
    min_packets: int = 500
    # Or, from fewer sources, this packet rate (packets / observed span, at least 1 s) ...
    min_pps: float = 1000.0
    # ... on at most this many victim ports (more is a port scan, not a flood).
    max_ports_few_sources: int = 10
    # UDP ports that legitimately receive one-way traffic from many devices (syslog, SNMP traps,
    # NetFlow/IPFIX/sFlow collectors): unanswered UDP to them is not a flood.
    udp_one_way_ports: tuple[int, ...] = (162, 514, 2055, 4739, 6343, 9995, 9996)


# The observed span of a counted window in seconds, at least 1 (a rate's denominator).
SPAN_S = pl.max_horizontal(
    pl.lit(1.0), (pl.col("last_seen") - pl.col("first_seen")).dt.total_microseconds() / 1e6
)


def windowed(
    obs: pl.LazyFrame,
    *,
    key: Sequence[str],
    window: timedelta,
    at_least: int,
    distinct: str,
    extra: Sequence[pl.Expr],
    where: pl.Expr | None = None,
) -> pl.LazyFrame:
    """:func:`threshold` with ``extra`` aggregates (packets, bytes, ports) over the same windows,
    plus ``span_s`` (:data:`SPAN_S`).

    Floods are judged by packets and bytes too, so the extras are aggregated with the counts, and
    ``where`` (the detector's own test, which may use :data:`SPAN_S`) is applied before evidence
    lists are built: a day of traffic has millions of (victim, window) groups and a few floods.
    """
    return threshold(
        obs,
        key=key,
        window=window,
        at_least=at_least,
        distinct=distinct,
        extra=extra,
        where=where,
        sparse=True,
        evidence_max=EVIDENCE_MAX,  # alerts keep no more; a flood's window has millions of rows
    ).with_columns(span_s=SPAN_S)


_VECTORS: dict[str, tuple[str, tuple[str, ...]]] = {
    # vector -> (label in the summary, ATT&CK techniques)
    "syn": ("SYN flood", ("T1498.001", "T1499.001")),
    "udp": ("UDP flood", ("T1498.001",)),
    "icmp": ("ICMP echo flood", ("T1498.001",)),
}


def flood_obs(conn: pl.LazyFrame, p: FloodParams) -> pl.LazyFrame:
    """Unanswered inbound traffic per connection, tagged with its vector; victim is ``resp_h``."""
    hist = pl.col("history").fill_null("")
    syn = (
        (pl.col("proto") == "tcp")
        & hist.str.starts_with("S")
        & ~hist.str.contains("A", literal=True)
    )
    udp = (
        (pl.col("proto") == "udp")
        & (pl.col("resp_pkts").fill_null(0) == 0)
        & ~pl.col("resp_p").is_in(list(p.udp_one_way_ports))
    )
    icmp = (pl.col("proto") == "icmp") & pl.col("orig_p").is_in([8, 128])  # echo request (v4, v6)
    vector = (
        pl.when(syn)
        .then(pl.lit("syn"))
        .when(udp)
        .then(pl.lit("udp"))
        .when(icmp)
        .then(pl.lit("icmp"))
    )
    return (
        conn.with_columns(vector=vector)
        .filter(pl.col("vector").is_not_null())
        .select("ts", "uid", "orig_h", "resp_h", "resp_p", "vector", "orig_pkts", "orig_ip_bytes")
    )


@detector(
    DETECTOR_ID,
    reads="conn",
    key=("resp_h",),
    attack=("T1498.001", "T1499.001"),
    params=FloodParams,
    alone=True,  # a flood is most of the conn table, and a set of sources per window
)
def flood(conn: pl.LazyFrame, p: FloodParams) -> pl.LazyFrame:
    """Victims of SYN, UDP or ICMP floods: many sources, or a high rate on few ports, unanswered."""
    pps = pl.col("pkts") / SPAN_S
    many = (pl.col("distinct_n") >= p.min_sources) & (pl.col("pkts") >= p.min_packets)
    fast = (pps >= p.min_pps) & (pl.col("ports") <= p.max_ports_few_sources)
    hits = windowed(
        flood_obs(conn, p),
        key=("resp_h", "vector"),
        window=timedelta(seconds=p.window_seconds),
        at_least=1,
        distinct="orig_h",
        extra=(
            pl.col("orig_pkts").fill_null(1).clip(1).sum().alias("pkts"),
            pl.col("orig_ip_bytes").fill_null(0).sum().alias("bytes"),
            pl.col("resp_p").n_unique().alias("ports"),
        ),
        where=many | fast,
    ).with_columns(pps=pl.col("pkts") / pl.col("span_s"))
    scale = pl.max_horizontal(pl.col("distinct_n") / p.min_sources, pl.col("pps") / p.min_pps)
    parts = [
        alerts(
            hits.filter(pl.col("vector") == vec),
            detector_id=DETECTOR_ID,
            techniques=techniques,
            severity=pl.when(scale >= 100)
            .then(pl.lit("critical"))
            .when(scale >= 10)
            .then(pl.lit("high"))
            .otherwise(pl.lit("medium")),
            confidence=pl.min_horizontal(
                pl.lit(0.99), 0.6 + 0.1 * scale.log10().clip(0.0) + 0.1 * (pl.col("ports") == 1)
            ),
            summary=pl.format(
                "{} under {}: {} packets at {} pkt/s from {} source(s) to {} port(s), unanswered",
                pl.col("resp_h"),
                pl.lit(label),
                pl.col("pkts"),
                pl.col("pps").round(0).cast(pl.Int64),
                pl.col("distinct_n"),
                pl.col("ports"),
            ),
            src=None,
            dst=pl.col("resp_h"),
            first_seen=pl.col("first_seen"),
            last_seen=pl.col("last_seen"),
            count=pl.col("n"),
            evidence_table="conn",
            evidence=pl.col("uids"),
            key=pl.col("resp_h") + pl.lit(f"|{vec}"),
        )
        for vec, (label, techniques) in _VECTORS.items()
    ]
    return pl.concat(parts, how="vertical")
