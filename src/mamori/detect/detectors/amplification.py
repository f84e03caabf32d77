"""Reflection/amplification on one victim (ATT&CK T1498.002).

The attacker spoofs the victim's address in small requests to open UDP services, whose large
replies converge on the victim. Seen from the victim: responses *from* an amplifying service port
arriving from many reflectors, with no request of the victim's behind them (Zeek history ``^d``,
state ``SHR``, or ``D``/``S0`` for ports outside ``likely_server_ports`` where Zeek does not flip)
or far more bytes back than the victim sent. A recursive resolver also hears from many servers,
but it asked first and gets a modest ratio back, so it stays quiet.

The victim is whichever endpoint is *not* on the service port, so it may be ``orig_h`` (flipped)
or ``resp_h`` (unflipped); the declared key ``victim`` is :func:`responses`' column of that name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.detectors.ddos import windowed

DETECTOR_ID = "ddos.amplification"

# Amplifying UDP services by port, as named in the summary.
SERVICES: dict[int, str] = {
    53: "DNS", 123: "NTP", 161: "SNMP", 11211: "memcached", 1900: "SSDP", 389: "CLDAP", 19: "chargen",
}  # fmt: skip


@dataclass(frozen=True)
class AmplificationParams(Params):
    # Tumbling window the responses are counted in; one alert per victim, service and window.
    window_seconds: float = 60.0
    # Distinct reflectors answering one victim from one service port in a window.
    min_reflectors: int = 20
    # Response bytes (IP) in the window: amplification is about volume.
    min_response_bytes: int = 100_000
    # Share of responses with no request from the victim that marks them as unsolicited ...
    min_unsolicited_share: float = 0.8
    # ... or, when requests were seen, the response/request byte ratio that marks amplification.
    min_byte_ratio: float = 20.0


def service_flipped() -> pl.Expr:
    """The amplifying service is on the responder side: the victim is the originator."""
    return pl.col("resp_p").is_in(list(SERVICES))


def victim() -> pl.Expr:
    """The endpoint that received the replies (row-wise: what partitions rows per victim)."""
    return pl.when(service_flipped()).then(pl.col("orig_h")).otherwise(pl.col("resp_h"))


def responses(conn: pl.LazyFrame) -> pl.LazyFrame:
    """UDP exchanges with an amplifying service port, oriented: ``victim``, ``reflector``, ``port``,
    response/request packets and bytes. Used by the backscatter detector too."""
    flipped = service_flipped()
    unflipped = pl.col("orig_p").is_in(list(SERVICES)) & ~flipped

    def side(if_flipped: str, if_not: str) -> pl.Expr:
        return pl.when(flipped).then(pl.col(if_flipped)).otherwise(pl.col(if_not))

    return (
        conn.filter((pl.col("proto") == "udp") & (flipped | unflipped))
        .select(
            "ts",
            "uid",
            victim=victim(),
            reflector=side("resp_h", "orig_h"),
            port=side("resp_p", "orig_p"),
            rsp_pkts=side("resp_pkts", "orig_pkts").fill_null(0),
            rsp_bytes=side("resp_ip_bytes", "orig_ip_bytes").fill_null(0),
            req_pkts=side("orig_pkts", "resp_pkts").fill_null(0),
            req_bytes=side("orig_ip_bytes", "resp_ip_bytes").fill_null(0),
        )
        .filter(pl.col("rsp_pkts") > 0)
    )


@detector(
    DETECTOR_ID,
    reads="conn",
    key=("victim",),
    attack=("T1498.002",),
    params=AmplificationParams,
    derive={"conn": {"victim": victim()}},
)
def amplification(conn: pl.LazyFrame, p: AmplificationParams) -> pl.LazyFrame:
    """Victims of UDP reflection: many reflectors, unsolicited or highly amplified responses."""
    ratio = pl.col("bytes") / pl.max_horizontal(pl.col("req_bytes"), pl.lit(1))
    hits = windowed(
        responses(conn),
        key=("victim", "port"),
        window=timedelta(seconds=p.window_seconds),
        at_least=p.min_reflectors,
        distinct="reflector",
        extra=(
            pl.col("rsp_pkts").sum().alias("pkts"),
            pl.col("rsp_bytes").sum().alias("bytes"),
            pl.col("req_bytes").sum().alias("req_bytes"),
            (pl.col("req_pkts") == 0).mean().alias("unsolicited"),
        ),
        where=(pl.col("bytes") >= p.min_response_bytes)
        & ((pl.col("unsolicited") >= p.min_unsolicited_share) | (ratio >= p.min_byte_ratio)),
    ).with_columns(ratio=ratio, mbps=pl.col("bytes") * 8 / pl.col("span_s") / 1e6)
    service = pl.col("port").replace_strict(SERVICES, return_dtype=pl.String)
    scale = pl.col("distinct_n") / p.min_reflectors
    return alerts(
        hits,
        detector_id=DETECTOR_ID,
        techniques=("T1498.002",),
        severity=pl.when((scale >= 50) | (pl.col("mbps") >= 1000))
        .then(pl.lit("critical"))
        .when((scale >= 5) | (pl.col("mbps") >= 100))
        .then(pl.lit("high"))
        .otherwise(pl.lit("medium")),
        confidence=pl.min_horizontal(
            pl.lit(0.99), 0.55 + 0.3 * pl.col("unsolicited") + 0.1 * scale.log10().clip(0.0)
        ),
        summary=pl.format(
            "{} under {} reflection/amplification: {} responses, {} bytes ({} Mbit/s) from {} reflector(s) on port {}, {}% unsolicited",
            pl.col("victim"),
            service,
            pl.col("pkts"),
            pl.col("bytes"),
            pl.col("mbps").round(1),
            pl.col("distinct_n"),
            pl.col("port"),
            (pl.col("unsolicited") * 100).round(0).cast(pl.Int64),
        ),
        src=None,
        dst=pl.col("victim"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="conn",
        evidence=pl.col("uids"),
        key=pl.col("victim") + pl.lit("|") + service,
    )
