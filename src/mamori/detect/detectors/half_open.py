"""Half-open probing: a source that opens connections to several services of one host, gets
each answered, and resets every one before a byte is sent (ATT&CK T1046 Network Service
Discovery).

Why apart from ``scan.trw``: Threshold Random Walk learns from failures (unanswered or refused
first contacts), and a SYN scan of open ports fails nowhere: each probe is answered with a
SYN-ACK, then the scanner's kernel, which never opened the connection (the SYN came from a raw
socket), resets it (Zeek's history ``ShR``; nmap's own discovery probes on 80 and 443 show as
``ShAR``). Two such probes of one target are the whole of ``nmap -p 80`` against a web server in
the shared trace. Applications do not do this: a client that opens a connection sends something
or closes it with a FIN, and a load balancer's half-open health check (connect, reset) tests one
port again and again, which is why at least two distinct ports are required. A single reset
after a SYN-ACK is left alone too: a SYN-ACK arriving after the client gave up looks the same
(one such connection is in a benign Modbus trace).

One alert per source, target and window: medium, as it is reconnaissance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "scan.half_open"


@dataclass(frozen=True)
class HalfOpenParams(Params):
    # Tumbling window the probes of one target are counted in.
    window_minutes: float = 5.0
    # Distinct ports of one target probed this way that make it a scan.
    min_ports: int = 2


@detector(ID, reads="conn", key=("orig_h",), attack=("T1046",), params=HalfOpenParams)
def half_open(conn: pl.LazyFrame, p: HalfOpenParams) -> pl.LazyFrame:
    """Sources resetting answered connections to several ports of one host before any data."""
    history = pl.col("history").fill_null("")
    probes = conn.filter(
        (pl.col("proto") == "tcp")
        & (pl.col("conn_state") == "RSTO")  # the originator reset it
        & history.str.starts_with("Sh")  # after the responder's SYN-ACK
        & ~history.str.contains("[DdFfTt]")  # no data, no FIN, no retransmitted data
        & (pl.col("orig_bytes").fill_null(0) == 0)
        & (pl.col("resp_bytes").fill_null(0) == 0)
    ).sort("ts", "uid")
    hits = threshold(
        probes,
        key=("orig_h", "resp_h"),
        window=timedelta(minutes=p.window_minutes),
        at_least=p.min_ports,
        distinct="resp_p",
        extra=(pl.col("resp_p").unique().sort().alias("ports"),),
    )
    return alerts(
        hits,
        detector_id=ID,
        techniques=("T1046",),
        severity="medium",
        confidence=0.7,
        summary=pl.format(
            "{} probed {} port(s) of {} half-open ({}): {} connection(s) answered and reset "
            "before a byte was sent",
            "orig_h",
            "distinct_n",
            "resp_h",
            pl.col("ports").cast(pl.List(pl.String)).list.head(10).list.join(", "),
            "n",
        ),
        src=pl.col("orig_h"),
        dst=pl.col("resp_h"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="conn",
        evidence=pl.col("uids"),
        key=pl.format("{}|{}", "orig_h", "resp_h"),
    )
