"""Command and control over HTTP/3: a QUIC session to a bare address (its handshake names no
server) that stays open for minutes with small, two-way traffic (ATT&CK T1071.001 Web
Protocols, T1573 Encrypted Channel).

Why these three together: C2 frameworks that speak HTTP/3 (Merlin, in the shared capture, and
Sliver) connect to their server by address, so the ClientHello carries no server name, and keep
one QUIC connection open while the agent checks in: minutes long, similar volumes each way. A
browser reaches HTTP/3 only through a name (Alt-Svc from the same site), so it sends SNI; the
nameless QUIC traces in Zeek's tests are a QUIC v2 interop test and DNS over QUIC, which last a
fraction of a second; DNS over QUIC (port 853) is excluded outright, as a client may hold a
session to its resolver's address for long. A download is one-sided, so the volumes must be
within ``max_ratio`` of each other. The ClientHello is read from QUIC's Initial packets
(``flows.analyzers.quic``, the row it gives the ssl table).

One alert per client and server per window: medium.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "c2.quic_no_name"


@dataclass(frozen=True)
class QuicC2Params(Params):
    # A session at least this long (seconds) is kept open, not used for one exchange.
    min_duration_seconds: float = 60.0
    # Bytes each way within this factor of each other: check-ins and replies, not a download.
    max_ratio: float = 5.0
    # UDP ports where a nameless QUIC session is HTTP/3 (DNS over QUIC's 853 is not among them).
    ports: tuple[int, ...] = (443,)
    window_hours: float = 24.0


@detector(
    ID, reads=("conn", "ssl"), key=("orig_h",), attack=("T1071.001", "T1573"), params=QuicC2Params
)  # fmt: skip
def quic_c2(conn: pl.LazyFrame, ssl: pl.LazyFrame, p: QuicC2Params) -> pl.LazyFrame:
    """Long, balanced QUIC sessions whose handshake names no server."""
    out_b = pl.col("orig_bytes").fill_null(0)
    in_b = pl.col("resp_bytes").fill_null(0)
    sessions = conn.filter(
        (pl.col("proto") == "udp")
        & pl.col("service").fill_null("").str.contains("quic", literal=True)
        & pl.col("resp_p").is_in(list(p.ports))
        & (pl.col("duration").fill_null(0.0) >= p.min_duration_seconds)
        & (out_b > 0)
        & (in_b > 0)
        & (pl.max_horizontal(out_b, in_b) <= p.max_ratio * pl.min_horizontal(out_b, in_b))
    ).select("ts", "uid", "orig_h", "resp_h", "resp_p", "duration", "orig_bytes", "resp_bytes")
    nameless = ssl.filter(pl.col("server_name").fill_null("") == "").select("uid").unique()
    found = sessions.join(nameless, on="uid", how="semi").sort("ts", "uid")
    hits = threshold(
        found,
        key=("orig_h", "resp_h"),
        window=timedelta(hours=p.window_hours),
        at_least=1,
        extra=(
            pl.col("duration").max().alias("longest"),
            pl.col("orig_bytes").sum().alias("sent"),
            pl.col("resp_bytes").sum().alias("received"),
            pl.col("resp_p").first().alias("port"),
        ),
    )
    return alerts(
        hits,
        detector_id=ID,
        techniques=("T1071.001", "T1573"),
        severity="medium",
        confidence=0.7,
        summary=pl.format(
            "{} held {} QUIC session(s) with {}:{} naming no server, the longest {} s, {} bytes "
            "sent and {} received: HTTP/3 C2 by address",
            "orig_h",
            "n",
            "resp_h",
            "port",
            pl.col("longest").round(0).cast(pl.Int64),
            "sent",
            "received",
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
