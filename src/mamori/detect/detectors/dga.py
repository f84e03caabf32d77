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
from mamori.detect.dga_features import load_model, main_label, registered_domain, score_series
from mamori.detect.windows import threshold

# Names that never leave the site or are not registrations at all: reverse lookups, mDNS, the
# usual private "TLDs". Scoring them would only produce noise.
LOCAL_SUFFIXES = ("arpa", "local", "localdomain", "lan", "home", "internal", "corp", "localhost")


@dataclass(frozen=True)
class DgaParams(Params):
    # Distinct DGA-looking registered domains from one client in a window before it alerts.
    min_domains: int = 8
    # Fewer suffice when they did not resolve: a DGA's misses are NXDOMAIN, a person's typo is rare.
    min_nxdomain_domains: int = 4
    # Score at or above which a name counts as DGA-looking; 0 means the model's own threshold
    # (set for a 0.9 % false-positive rate on benign calibration names).
    score_threshold: float = 0.0
    # Main labels shorter than this are never scored: too few characters to tell chance from
    # design (and short acronyms are common benign names).
    min_label_length: int = 6
    window_minutes: float = 60.0

    def __post_init__(self) -> None:
        if self.min_domains < 1 or self.min_nxdomain_domains < 1:
            raise ValueError("min_domains and min_nxdomain_domains must be >= 1")
        if not 0.0 <= self.score_threshold < 1.0 or self.window_minutes <= 0:
            raise ValueError("need 0 <= score_threshold < 1 and window_minutes > 0")


def scored_queries(dns: pl.LazyFrame, p: DgaParams) -> pl.LazyFrame:
    """DNS queries with their registered domain, main label and DGA score (distinct labels are
    scored once, as whole columns)."""
    q = (
        dns.filter(pl.col("query").is_not_null())
        .with_columns(domain=registered_domain(pl.col("query")))
        .filter(
            pl.col("domain").str.contains(r"\.")
            & ~pl.col("domain").str.split(".").list.last().is_in(LOCAL_SUFFIXES)
        )
        .with_columns(label=main_label(pl.col("domain")))
        .filter(pl.col("label").str.len_chars() >= p.min_label_length)
    )
    labels = (
        q.select("label")
        .unique()
        .with_columns(score=pl.col("label").map_batches(score_series, return_dtype=pl.Float64))
    )
    return q.join(labels, on="label", how="left")


@detector(
    "dns.dga",
    reads="dns",
    key=("orig_h",),
    attack=("T1568.002",),
    params=DgaParams,
)
def dga(dns: pl.LazyFrame, p: DgaParams) -> pl.LazyFrame:
    """Clients resolving several DGA-looking registered domains (fewer if NXDOMAIN) in a window."""
    cut = p.score_threshold or float(load_model()["threshold"])
    hits = scored_queries(dns, p).filter(pl.col("score") >= cut)
    window = timedelta(minutes=p.window_minutes)
    low = min(p.min_domains, p.min_nxdomain_domains)
    every = threshold(hits, key=("orig_h",), window=window, at_least=low, distinct="domain")
    nx = hits.filter(pl.col("rcode_name") == "NXDOMAIN")
    nx_counts = threshold(nx, key=("orig_h",), window=window, at_least=1, distinct="domain").select(
        "orig_h", "window", nx_n=pl.col("distinct_n")
    )
    every_ns = f"{int(window.total_seconds() * 1_000_000)}us"
    examples = (
        hits.with_columns(window=pl.col("ts").dt.truncate(every_ns))
        .group_by("orig_h", "window")
        .agg(
            domains=pl.col("domain").unique().sort(),
            top=pl.col("score").max(),
        )
    )
    found = (
        every.join(nx_counts, on=["orig_h", "window"], how="left")
        .join(examples, on=["orig_h", "window"], how="left")
        .with_columns(pl.col("nx_n").fill_null(0))
        .filter(
            (pl.col("distinct_n") >= p.min_domains) | (pl.col("nx_n") >= p.min_nxdomain_domains)
        )
    )
    n, nx_n = pl.col("distinct_n"), pl.col("nx_n")
    return alerts(
        found,
        detector_id="dns.dga",
        techniques=("T1568.002",),
        severity=pl.when((n >= 3 * p.min_domains) | (nx_n >= 3 * p.min_nxdomain_domains))
        .then(pl.lit("high"))
        .otherwise(pl.lit("medium")),
        confidence=pl.min_horizontal(
            pl.lit(0.99), 0.6 + 0.2 * nx_n / n + 0.2 * pl.min_horizontal(pl.lit(1.0), n / 50)
        ),
        summary=pl.format(
            "{} queried {} DGA-looking domains ({} NXDOMAIN), e.g. {}",
            pl.col("orig_h"),
            n,
            nx_n,
            pl.col("domains").list.head(3).list.join(", "),
        ),
        src=pl.col("orig_h"),
        dst=None,
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=n,
        evidence_table="dns",
        evidence=pl.col("uids").list.unique().list.sort(),  # row order must not matter
        key=pl.col("orig_h"),
        domains=pl.col("domains"),
    )
