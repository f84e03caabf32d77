"""Clients querying algorithmically generated domains (DGA malware looking for its C2).

A DGA bot derives hundreds of pseudo-random domains a day from the date and a seed and tries them
until one resolves; the operator registers only a few. Seen from the network, an infected client
queries many registered domains no person would type, most of which do not exist (NXDOMAIN). One
odd name is nothing (CDNs and trackers have odd names); several distinct ones from one client in
a window is the pattern.

Each query's registered domain is scored by a small logistic-regression model over character
n-grams, label statistics and the label's likelihood under a character language model of benign
names (``dga_model.json``, trained and evaluated on families left out of training by
``scripts/train_dga.py``, see docs/dga.md). Names are scored once per distinct label,
vectorised, not per record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.dga_features import (
    clipped_logit,
    load_model,
    main_label,
    query_domains,
    score_series,
    session_threshold_expr,
)
from mamori.detect.windows import threshold


@dataclass(frozen=True)
class DgaParams(Params):
    # Distinct DGA-looking registered domains from one client in a window before it alerts.
    min_domains: int = 8
    # Fewer suffice when they did not resolve: a DGA's misses are NXDOMAIN, a person's typo is rare.
    min_nxdomain_domains: int = 4
    # The session rule: a client with at least this many distinct scored names in a window
    # alerts when their mean clipped logit reaches the model's threshold for that many (set for
    # 0.1 % of random benign sessions). One pronounceable DGA name looks like a brand; twenty
    # of them together do not, and the mean of many names varies far less than one name's score.
    # 0 turns the rule off.
    min_session_domains: int = 10
    # Score at or above which a name counts as DGA-looking; 0 means the model's own threshold
    # (set for a 0.9 % false-positive rate on benign calibration names).
    score_threshold: float = 0.0
    # Main labels shorter than this are never scored: too few characters to tell chance from
    # design (and short acronyms are common benign names).
    min_label_length: int = 6
    window_minutes: float = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_domains < 1 or self.min_nxdomain_domains < 1:
            raise ValueError("min_domains and min_nxdomain_domains must be >= 1")
        if self.min_session_domains < 0:
            raise ValueError("min_session_domains must be >= 0 (0: no session rule)")
        if not 0.0 <= self.score_threshold < 1.0 or self.window_minutes <= 0:
            raise ValueError("need 0 <= score_threshold < 1 and window_minutes > 0")


def scored_queries(dns: pl.LazyFrame, p: DgaParams) -> pl.LazyFrame:
    """DNS queries with their registered domain, main label and DGA score (distinct labels are
    scored once, as whole columns)."""
    # Local names (``dga_features.LOCAL_SUFFIXES``) are never scored: only noise would come of it.
    names = (
        query_domains(dns)
        .select("query", "domain", label=main_label(pl.col("domain")))
        .filter(pl.col("label").str.len_chars() >= p.min_label_length)
    )
    labels = (
        names.select("label")
        .unique()
        .with_columns(score=pl.col("label").map_batches(score_series, return_dtype=pl.Float64))
    )
    names = names.join(labels, on="label", how="left")
    return dns.join(names, on="query", how="inner", maintain_order="left")


@detector(
    "dns.dga",
    reads="dns",
    key=("orig_h",),
    attack=("T1568.002",),
    params=DgaParams,
)
def dga(dns: pl.LazyFrame, p: DgaParams) -> pl.LazyFrame:
    """Clients resolving several DGA-looking registered domains (fewer if NXDOMAIN) in a window,
    or many names whose scores are high *on average* (the session rule)."""
    model = load_model()
    cut = p.score_threshold or float(model["threshold"])
    session = model.get("session") if p.min_session_domains else None
    window = timedelta(minutes=p.window_minutes)
    every = f"{int(window.total_seconds() * 1_000_000)}us"  # the windows of `threshold`
    # More DGA than not (or a hit): the rows a session alert gives as evidence. Only these are
    # aggregated with evidence lists; the session statistics are one flat pass over all names.
    lean_cut = min(0.5, cut)
    q = scored_queries(dns, p).with_columns(_sw=pl.col("ts").dt.truncate(every))
    if session:
        by_session = (
            q.group_by("orig_h", "_sw", "label")
            .agg(pl.col("score").first())
            .group_by("orig_h", "_sw")
            .agg(session_n=pl.len(), session_mean=clipped_logit(pl.col("score")).mean())
            .filter(
                (pl.col("session_n") >= p.min_session_domains)
                & (pl.col("session_mean") >= session_threshold_expr(pl.col("session_n"), session))
            )
        )
    else:
        by_session = (
            q.select("orig_h", "_sw")
            .clear()
            .with_columns(session_n=pl.lit(None, pl.UInt32), session_mean=pl.lit(None, pl.Float64))
        )
    lean = (
        q.filter(pl.col("score") >= lean_cut)
        .join(by_session, on=["orig_h", "_sw"], how="left")
        .with_columns(hit=pl.col("score") >= cut)
    )
    hit, nx = pl.col("hit"), pl.col("rcode_name") == "NXDOMAIN"
    extra = [
        pl.col("domain").filter(hit).n_unique().alias("hits_n"),
        pl.col("domain").filter(hit & nx).n_unique().alias("nx_n"),
        pl.col("domain").filter(nx).n_unique().alias("lean_nx_n"),
        pl.col("session_n").first(),
        pl.col("session_mean").first(),
        pl.col("domain").filter(hit).unique().sort().alias("hit_domains"),
        pl.col("domain").unique().sort().alias("lean_domains"),
        pl.col("uid").filter(hit).alias("hit_uids"),
        pl.col("ts").filter(hit).min().alias("hit_first"),
        pl.col("ts").filter(hit).max().alias("hit_last"),
    ]
    by_count = (pl.col("hits_n") >= p.min_domains) | (pl.col("nx_n") >= p.min_nxdomain_domains)
    windows = threshold(
        lean,
        key=("orig_h",),
        window=window,
        at_least=1,
        distinct="domain",
        extra=extra,
        where=by_count | pl.col("session_mean").is_not_null(),
    ).rename({"distinct_n": "lean_n"})
    counted = pl.col("counted")
    found = windows.with_columns(counted=by_count).with_columns(
        n=pl.when(counted).then("hits_n").otherwise("lean_n"),
        nx_n=pl.when(counted).then("nx_n").otherwise("lean_nx_n"),
        domains=pl.when(counted).then("hit_domains").otherwise("lean_domains"),
        evidence=pl.when(counted).then("hit_uids").otherwise("uids"),
        first_seen=pl.when(counted).then("hit_first").otherwise("first_seen"),
        last_seen=pl.when(counted).then("hit_last").otherwise("last_seen"),
    )
    n, nx_n = pl.col("n"), pl.col("nx_n")
    examples = pl.col("domains").list.head(3).list.join(", ")
    return alerts(
        found,
        detector_id="dns.dga",
        techniques=("T1568.002",),
        severity=pl.when((n >= 3 * p.min_domains) | (nx_n >= 3 * p.min_nxdomain_domains))
        .then(pl.lit("high"))
        .otherwise(pl.lit("medium")),
        confidence=pl.min_horizontal(
            pl.lit(0.99),
            0.6
            + 0.2 * nx_n / pl.max_horizontal(n, 1)
            + 0.2 * pl.min_horizontal(pl.lit(1.0), n / 50),
        ),
        summary=pl.when(counted)
        .then(
            pl.format(
                "{} queried {} DGA-looking domains ({} NXDOMAIN), e.g. {}",
                pl.col("orig_h"),
                n,
                nx_n,
                examples,
            )
        )
        .otherwise(
            pl.format(
                "{} queried {} names with a mean DGA logit of {} ({} lean DGA, {} NXDOMAIN), e.g. {}",
                pl.col("orig_h"),
                pl.col("session_n"),
                pl.col("session_mean").round(2),
                n,
                nx_n,
                examples,
            )
        ),
        src=pl.col("orig_h"),
        dst=None,
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=n,
        evidence_table="dns",
        evidence=pl.col("evidence").list.unique().list.sort(),  # row order must not matter
        key=pl.col("orig_h"),
        domains=pl.col("domains"),
    )
