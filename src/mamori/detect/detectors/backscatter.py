"""Unsolicited SYN-ACK, RST and ICMP-unreachable arriving at one host: backscatter or reflection.

A host that never sent a SYN but receives SYN-ACKs or RSTs (Zeek history starting ``^h``/``^r``
when flipped, ``H``/``R`` when not), or destination-unreachables, is seeing answers to packets
someone else sent in its name. Two readings, told apart by scale:

* ``ddos.tcp_reflection`` (T1498.002, high): many sources at a high rate, mostly SYN-ACK/RST. An
  attacker spoofs the victim in SYNs to many servers so their SYN-ACKs converge on it; the
  ``amp.TCP.reflection.SYNACK`` capture (thousands of port-80 servers in 150 ms) is this.
* ``ddos.backscatter`` (T1498.001/T1499.001, low or medium): fewer or slower. Someone floods a third
  party with sources spoofed at random and this host catches its share of the replies: evidence
  of an attack elsewhere, not a threat to this host.

Windows in which the host also receives UDP reflection (:mod:`.amplification`) are left to that
detector: there the unreachables are the refusals of the same attack, not a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.detectors.amplification import responses
from mamori.detect.detectors.amplification import service_flipped as amp_flipped
from mamori.detect.detectors.ddos import windowed
from mamori.detect.windows import shared


@dataclass(frozen=True)
class BackscatterParams(Params):
    # Tumbling window; one alert per host and window.
    window_seconds: float = 60.0
    # Distinct sources of unsolicited responses that make a window backscatter ...
    min_sources: int = 10
    # ... and packets (a few late RSTs after idle timeouts are normal).
    min_packets: int = 20
    # Sources and rate (packets / span, at least 1 s) that make it a reflection attack on the host.
    reflection_min_sources: int = 100
    reflection_min_pps: float = 100.0
    # Distinct UDP reflectors in the same window that hand the window to ddos.amplification.
    defer_to_udp_reflectors: int = 20


def _flipped() -> pl.Expr:
    # Only SYN-ACKs/RSTs from the source, at most RSTs back: a session caught mid-handshake has data.
    hist = pl.col("history").fill_null("")
    return (pl.col("proto") == "tcp") & hist.str.contains(r"^\^[hr][hrR]*$")


def _victim() -> pl.Expr:
    """Row-wise receiver of unsolicited answers, and of UDP reflections (which these detectors
    weigh against ddos.amplification's): what partitions rows per victim."""
    return (
        pl.when(_flipped() | ((pl.col("proto") == "udp") & amp_flipped()))
        .then(pl.col("orig_h"))
        .otherwise(pl.col("resp_h"))
    )


def unsolicited(conn: pl.LazyFrame) -> pl.LazyFrame:
    """Answers nobody on this host asked for, oriented: ``victim`` (receiver), ``source``, ``kind``."""
    hist = pl.col("history").fill_null("")
    tcp = pl.col("proto") == "tcp"
    flipped = _flipped()
    direct = tcp & hist.str.contains(r"^[HR][HRr]*$")
    v6 = pl.col("orig_h").str.contains(":", literal=True)
    unreach = (pl.col("proto") == "icmp") & pl.when(v6).then(pl.col("orig_p") == 1).otherwise(
        pl.col("orig_p") == 3
    )
    # The answer's first letter, past a flip mark, is h/H for a SYN-ACK (else an RST): tested
    # as prefixes, not by cutting and lower-casing a copy of every history.
    synack = pl.any_horizontal(hist.str.starts_with(s) for s in ("h", "H", "^h", "^H"))
    # Only TCP whose history starts with an answer (H, R, or ^ for a flipped one) and ICMP can
    # match: a cheap test on every row first, so the patterns run on those few rows alone (kept
    # apart as a column: a plain filter would be merged into the one below and run on every row).
    maybe = (tcp & hist.str.head(1).is_in(["H", "R", "^"])) | (pl.col("proto") == "icmp")
    return (
        conn.filter(maybe)
        .with_columns(_unsolicited=flipped | direct | unreach)
        .filter("_unsolicited")
        .with_columns(
            victim=pl.when(flipped).then(pl.col("orig_h")).otherwise(pl.col("resp_h")),
            source=pl.when(flipped).then(pl.col("resp_h")).otherwise(pl.col("orig_h")),
            pkts=pl.when(flipped)
            .then(pl.col("resp_pkts"))
            .otherwise(pl.col("orig_pkts"))
            .fill_null(1)
            .clip(1),
            kind=pl.when(unreach)
            .then(pl.lit("icmp"))
            .when(synack)
            .then(pl.lit("synack"))
            .otherwise(pl.lit("rst")),
        )
        .select("ts", "uid", "victim", "source", "pkts", "kind")
    )


def _alerts(
    hits: pl.LazyFrame, det_id: str, techniques: tuple[str, ...], severity: pl.Expr, what: str
) -> pl.LazyFrame:
    return alerts(
        hits,
        detector_id=det_id,
        techniques=techniques,
        severity=severity,
        confidence=pl.min_horizontal(
            pl.lit(0.95), 0.5 + 0.1 * (pl.col("distinct_n") / 10).log10().clip(0.0)
        ),
        summary=pl.format(
            "{} receives unsolicited {} ({} SYN-ACK, {} RST, {} ICMP-unreachable) at {} pkt/s from {} source(s): {}",
            pl.col("victim"),
            pl.lit("responses"),
            pl.col("synack"),
            pl.col("rst"),
            pl.col("icmp"),
            pl.col("pps").round(1),
            pl.col("distinct_n"),
            pl.lit(what),
        ),
        src=pl.when(pl.col("distinct_n") == 1).then(pl.col("sources").list.first()),
        dst=pl.col("victim"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="conn",
        evidence=pl.col("uids"),
        key=pl.col("victim"),
    )


def _findings(conn: pl.LazyFrame, p: BackscatterParams) -> pl.LazyFrame:
    """Every window of unsolicited answers worth an alert, with ``reflection`` telling the two
    readings apart: both detectors report from the same findings, counted once per engine run."""
    return shared("ddos.unsolicited", (conn,), p, lambda: _count_findings(conn, p))


# Unsolicited answers held in memory at most (about 60 B each): see _count_findings.
KEEP_ROWS = 1_000_000


def _count_findings(conn: pl.LazyFrame, p: BackscatterParams) -> pl.LazyFrame:
    window = timedelta(seconds=p.window_seconds)
    kind = pl.col("kind")
    # The windowed count reads its observations twice (the counts, then the evidence of the
    # windows that pass) and the filter that finds the unsolicited answers among all connections
    # is most of that. On most days they are a small share (15 % of the ingest workload's), so
    # they are found once and kept; on a reflection day they may be most of the table, and are
    # then found again rather than held (the first KEEP_ROWS + 1 found are the only waste).
    obs = unsolicited(conn)
    few = obs.head(KEEP_ROWS + 1).collect()
    if few.height <= KEEP_ROWS:
        obs = few.lazy()
    hits = windowed(
        obs,
        key=("victim",),
        window=window,
        at_least=p.min_sources,
        distinct="source",
        extra=[pl.col("pkts").filter(kind == k).sum().alias(k) for k in ("synack", "rst", "icmp")]
        + [
            pl.col("pkts").sum().alias("pkts"),
            pl.col("source").unique().sort().head(2).alias("sources"),
        ],
    ).with_columns(pps=pl.col("pkts") / pl.col("span_s"))
    every = f"{int(window.total_seconds() * 1_000_000)}us"
    udp = (
        responses(conn)
        .group_by("victim", pl.col("ts").dt.truncate(every).alias("window"))
        .agg(udp_reflectors=pl.col("reflector").n_unique())
    )
    return (
        hits.join(udp, on=["victim", "window"], how="left")
        .filter(
            (pl.col("pkts") >= p.min_packets)
            & (pl.col("udp_reflectors").fill_null(0) < p.defer_to_udp_reflectors)
        )
        .with_columns(
            reflection=(pl.col("distinct_n") >= p.reflection_min_sources)
            & (pl.col("pps") >= p.reflection_min_pps)
            & (pl.col("synack") + pl.col("rst") > pl.col("icmp"))
        )
    )


@detector(
    "ddos.tcp_reflection",
    reads="conn",
    key=("victim",),
    attack=("T1498.002",),
    params=BackscatterParams,
    derive={"conn": {"victim": _victim()}},
)
def tcp_reflection(conn: pl.LazyFrame, p: BackscatterParams) -> pl.LazyFrame:
    """Hosts flooded with SYN-ACK/RST from many servers that were sent SYNs in the host's name."""
    sev = (
        pl.when(pl.col("pps") >= 100 * p.reflection_min_pps)
        .then(pl.lit("critical"))
        .otherwise(pl.lit("high"))
    )
    hits = _findings(conn, p).filter(pl.col("reflection"))
    return _alerts(
        hits, "ddos.tcp_reflection", ("T1498.002",), sev, "TCP reflection aimed at this host"
    )


@detector(
    "ddos.backscatter",
    reads="conn",
    key=("victim",),
    attack=("T1498.001", "T1499.001"),
    params=BackscatterParams,
    derive={"conn": {"victim": _victim()}},
)
def backscatter(conn: pl.LazyFrame, p: BackscatterParams) -> pl.LazyFrame:
    """Hosts catching replies to floods elsewhere that spoofed their address (low/medium)."""
    sev = (
        pl.when(pl.col("distinct_n") >= 5 * p.min_sources)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
    )
    hits = _findings(conn, p).filter(~pl.col("reflection"))
    return _alerts(
        hits,
        "ddos.backscatter",
        ("T1498.001", "T1499.001"),
        sev,
        "backscatter of a spoofed attack elsewhere",
    )
