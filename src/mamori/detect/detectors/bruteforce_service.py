"""Login guessing against services whose protocol mamori does not parse, seen in conn.log alone.

A failed login to Telnet, RDP, SMB, WinRM or VNC has a recognisable connection shape: the TCP
handshake completes, a short authentication dialogue flows both ways, and the server hangs up
within seconds. A guessing tool repeats that dialogue, so the attempts are also nearly the same
size. Many such connections from one source to one service port in a window, most within a small
band around their median size, are counted as guessing. A real session (an RDP desktop, a file
copy) is long or large and drops out. FTP (21) is included because mamori's ftp.log, like Zeek's
default, does not log ``PASS``, so this shape is the only sign of FTP guessing in the lake.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.scoring import volume_confidence, volume_severity
from mamori.detect.windows import threshold

ID = "bruteforce.service"
KEY = ("orig_h", "resp_p")
NAMES = {
    21: "FTP",
    23: "Telnet",
    445: "SMB",
    3389: "RDP",
    5900: "VNC",
    5985: "WinRM",
    5986: "WinRM",
}
# Zeek conn_state values for connections whose handshake completed.
ESTABLISHED = ("SF", "S1", "S2", "S3", "RSTO", "RSTR")


@dataclass(frozen=True)
class ServiceBruteforceParams(Params):
    # TCP service ports watched (FTP, Telnet, SMB, RDP, VNC, WinRM http/https).
    ports: tuple[int, ...] = (21, 23, 445, 3389, 5900, 5985, 5986)
    # Short, completed, two-way connections from one source to one port before it is guessing.
    # Higher than SSH's 10 failures: here every short session counts, not confirmed failures.
    attempts_limit: int = 20
    # Window over which attempts are counted.
    window_minutes: float = 15.0
    # Longest connection that still looks like a refused login (a real session lasts longer).
    max_duration_seconds: float = 30.0
    # An attempt is "similar" if its client bytes are within this fraction of the median...
    size_tolerance: float = 0.25
    # ...and at least this share of the window's attempts must be similar (a tool repeating itself).
    similar_share: float = 0.7

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.attempts_limit < 1 or self.window_minutes <= 0 or self.max_duration_seconds <= 0:
            raise ValueError("attempts_limit must be >= 1 and the durations positive")
        if not 0 <= self.similar_share <= 1 or self.size_tolerance < 0:
            raise ValueError("similar_share must be in [0, 1] and size_tolerance >= 0")


@detector(ID, reads="conn", key=("orig_h",), attack=("T1110",), params=ServiceBruteforceParams)
def service_bruteforce(conn: pl.LazyFrame, p: ServiceBruteforceParams) -> pl.LazyFrame:
    """Sources making many short, similar, completed connections to one login service."""
    window = timedelta(minutes=p.window_minutes)
    every = f"{int(window.total_seconds() * 1_000_000)}us"
    attempts = conn.filter(
        (pl.col("proto") == "tcp")
        & pl.col("resp_p").is_in(list(p.ports))
        & pl.col("conn_state").is_in(ESTABLISHED)
        & (pl.col("orig_bytes") > 0)
        & (pl.col("resp_bytes") > 0)
        & (pl.col("duration") <= p.max_duration_seconds)
    ).sort("ts", "uid")  # a total order: evidence must not depend on the input's row order
    hits = threshold(attempts, key=KEY, window=window, at_least=p.attempts_limit, sparse=True)
    # Sizes and servers only for the windows that reached the limit (a site's SMB and RDP
    # clients make many short sessions; a few sources in a day reach the limit).
    size = pl.col("orig_bytes").cast(pl.Float64)
    extra = (
        attempts.with_columns(window=pl.col("ts").dt.truncate(every))
        .join(hits.select(*KEY, "window"), on=[*KEY, "window"], how="semi", nulls_equal=True)
        .group_by(*KEY, "window")
        .agg(
            servers=pl.col("resp_h").unique().sort(),
            similar=((size - size.median()).abs() <= p.size_tolerance * size.median()).mean(),
            median_bytes=size.median(),
        )
    )
    hits = hits.join(extra, on=[*KEY, "window"], how="left").filter(
        pl.col("similar") >= p.similar_share
    )
    service = (
        pl.col("resp_p")
        .cast(pl.Int64)
        .replace_strict(NAMES, default=None, return_dtype=pl.String)
        .fill_null(pl.format("port {}", pl.col("resp_p")))
    )
    one = pl.col("servers").list.len() == 1
    return alerts(
        hits,
        detector_id=ID,
        techniques=("T1110",),
        severity=volume_severity(pl.col("n"), p.attempts_limit),
        confidence=volume_confidence(pl.col("n"), p.attempts_limit, 0.5, 0.9),
        summary=pl.format(
            "{} made {} short {} login-sized connections (~{} bytes each) to {} server(s)",
            pl.col("orig_h"),
            pl.col("n"),
            service,
            pl.col("median_bytes").round(0).cast(pl.Int64),
            pl.col("servers").list.len(),
        ),
        src=pl.col("orig_h"),
        dst=pl.when(one).then(pl.col("servers").list.first()),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="conn",
        evidence=pl.col("uids"),
        key=pl.format("{}|{}", pl.col("orig_h"), pl.col("resp_p")),
    )
