"""Threat-intel matches: lake records that name an indicator from the intel store.

One alert per (indicator, internal host), so a host beaconing to a listed C2 all day is one alert
with its evidence, and two hosts are two. The internal host is the peer of a matched address (a
listed address as responder means the originator is ours; as originator, the responder is), and the
client for names, URLs and TLS fingerprints. Evidence is the Zeek uids of the connections: a uid
names the connection in ``conn`` and in every protocol table, so ``evidence_table`` is ``conn`` and
the summary says which tables saw the indicator.

ATT&CK: intel names an observable, not a behaviour, so techniques come only from what the source
says: ATT&CK ids of attack patterns the indicator is related to, and T1071 (Application Layer
Protocol) when the indicator says command and control (a kill-chain phase ``command-and-control``
or a type, label or name saying C2). Otherwise the alert carries no technique.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.intel.match import PER_VALUE, match
from mamori.intel.schema import default_store
from mamori.intel.store import read

_C2 = r"(?i)command[-_ ]and[-_ ]control|\bc2\b|\bc&c\b|\bcnc\b"


@dataclass(frozen=True)
class IntelMatchParams(Params):
    # Folder of the intel store (``mamori intel import --store``); an empty store raises nothing.
    store: str = field(default_factory=lambda: str(default_store()))
    # MISP attributes not flagged for detection (to_ids false) are context, not alarms.
    only_to_ids: bool = True
    # Ignore indicators outside their validity (valid_from/valid_until) at the record's time.
    respect_validity: bool = True
    # At most this many indicators per observed value (most specific, then most confident): a
    # value many feeds list, or a name under many listed parents, stays a bounded set of rows.
    per_value: int = PER_VALUE


def _techniques() -> pl.Expr:
    from_patterns = (
        pl.col("related")
        .list.eval(pl.element().str.extract(r"\|(T\d{4}(?:\.\d{3})?)$"))
        .list.drop_nulls()
    )
    said_c2 = (
        pl.col("kill_chain_phases").list.eval(pl.element().str.contains(_C2)).list.any()
        | pl.col("labels").list.eval(pl.element().str.contains(_C2)).list.any()
        | pl.col("name").fill_null("").str.contains(_C2)
    ).fill_null(False)
    c2 = pl.when(said_c2).then(pl.lit(["T1071"])).otherwise(pl.lit([], pl.List(pl.String)))
    return pl.concat_list(from_patterns, c2).list.unique().list.sort()


@detector(
    "intel.match",
    reads=("conn", "dns", "http", "ssl"),
    key=("orig_h",),
    attack=("T1071",),
    params=IntelMatchParams,
)
def intel_match(
    conn: pl.LazyFrame,
    dns: pl.LazyFrame,
    http: pl.LazyFrame,
    ssl: pl.LazyFrame,
    p: IntelMatchParams,
) -> pl.LazyFrame:
    """Records naming a stored indicator, one alert per (indicator, internal host)."""
    indicators = read(p.store)  # type: ignore[arg-type]
    if p.only_to_ids:
        indicators = indicators.filter(pl.col("to_ids"))
    hits = match(
        indicators, {"conn": conn, "dns": dns, "http": http, "ssl": ssl}, per_value=p.per_value
    )
    found = hits.join(
        indicators.with_columns(techniques=_techniques()), left_on="indicator", right_on="id"
    )
    if p.respect_validity:
        found = found.filter(
            (pl.col("valid_from").is_null() | (pl.col("ts") >= pl.col("valid_from")))
            & (pl.col("valid_until").is_null() | (pl.col("ts") <= pl.col("valid_until")))
        )
    internal = (
        pl.when(pl.col("where").str.ends_with(".orig_h"))
        .then(pl.col("resp_h"))
        .otherwise(pl.col("orig_h"))
    )
    grouped = (
        found.with_columns(host=internal)
        .sort("ts", "uid")
        .group_by("indicator", "host", maintain_order=True)
        .agg(
            pl.col("type", "value", "source", "tlp", "confidence", "name", "techniques").first(),
            peer=pl.when(pl.col("where").str.ends_with(".orig_h"))
            .then(pl.col("orig_h"))
            .otherwise(pl.col("resp_h"))
            .first(),
            seen=pl.col("seen").first(),
            tables=pl.col("table").unique().sort().str.join(", "),
            first_seen=pl.col("ts").min(),
            last_seen=pl.col("ts").max(),
            n=pl.len(),
            uids=pl.col("uid").unique(maintain_order=True),
        )
    )
    if grouped.height == 0:
        grouped = grouped.with_columns(
            first_seen=pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC"))
        )
    conf = pl.col("confidence").cast(pl.Float64)
    return alerts(
        grouped.lazy(),
        detector_id="intel.match",
        techniques=pl.col("techniques"),
        severity=pl.when(conf >= 85)
        .then(pl.lit("high"))
        .when(conf >= 50)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low")),
        confidence=conf / 100.0,
        summary=pl.format(
            "{} matched {} indicator {} from {} (TLP:{}{}) in {}: {} record(s)",
            pl.col("host"),
            pl.col("type"),
            pl.col("value"),
            pl.col("source"),
            pl.col("tlp").str.to_uppercase(),
            pl.when(pl.col("name").is_not_null())
            .then(pl.lit(", ") + pl.col("name"))
            .otherwise(pl.lit("")),
            pl.col("tables"),
            pl.col("n"),
        ),
        src=pl.col("host"),
        dst=pl.col("peer"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="conn",
        evidence=pl.col("uids"),
        key=pl.col("indicator") + pl.lit("|") + pl.col("host"),
        domains=pl.concat_list(
            pl.when(pl.col("type") == "domain").then(pl.col("value")).otherwise(None)
        ),
    )
