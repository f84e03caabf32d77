"""DNS tunnels and DNS command channels: data carried in query names and TXT/NULL answers.

Tunnelling tools (iodine, dns2tcp, dnscat2, dnscapy) and DNS-based C2 encode data in the subdomain
part of names under one domain they control, so every query is new (no cache can answer it) and
the names are long and high-entropy; command channels fetch their payload in TXT (or NULL)
records, which ordinary clients rarely ask for. Per (client, registered domain) and window we
measure the number of distinct subdomains, their mean length, the character entropy of all of them
together (a base32/base64 alphabet gives 5-6 bits, hostnames about 4) and the TXT/NULL share.

Many distinct subdomains is required (one long name is a CDN or a tracker); with it, encoded names
*or* a TXT/NULL channel alert, and so does a sheer volume of distinct subdomains. The upstream
volume (bytes of distinct subdomains) adds T1048 when it suggests exfiltration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.dga_features import query_domains, registered_domain
from mamori.detect.windows import threshold

_KEY = ("orig_h", "domain")
# TXT and NULL carry payloads; dnscat2 also rotates through MX and CNAME, which clients other
# than mail servers (asking about many different domains, not one) hardly ever request.
CHANNEL_QTYPES = ("TXT", "NULL", "MX", "CNAME")


@dataclass(frozen=True)
class DnsTunnelParams(Params):
    # Distinct subdomains of one registered domain from one client in a window before anything is
    # judged: a tunnel moves data only by asking new names.
    min_unique_subdomains: int = 30
    # Encoded names: mean subdomain length (characters, dots included) and the entropy (bits per
    # character) of all the distinct subdomains' characters together.
    min_mean_length: float = 20.0
    min_entropy: float = 4.3
    # Command channel: share of the queries asking for TXT or NULL records.
    min_channel_share: float = 0.5
    # ...and distinct subdomains asked for as TXT/NULL/MX/CNAME: a command channel polls few
    # names (the real TXT C2 capture has 19 in 50 queries); a mail server's SPF/DKIM lookups
    # ask a handful per domain.
    min_channel_subdomains: int = 10
    # Distinct subdomains that alone make a tunnel, whatever the names look like.
    volume_unique_subdomains: int = 500
    # Bytes of distinct subdomain names in a window above which the tunnel also reads as
    # exfiltration (T1048).
    exfil_bytes: int = 10_000
    window_minutes: float = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if (
            min(
                self.min_unique_subdomains,
                self.min_channel_subdomains,
                self.volume_unique_subdomains,
            )
            < 1
        ):
            raise ValueError("subdomain counts must be >= 1")
        if not 0.0 < self.min_channel_share <= 1.0 or self.window_minutes <= 0:
            raise ValueError("need 0 < min_channel_share <= 1 and window_minutes > 0")


def _entropy(chars: pl.Expr) -> pl.Expr:
    """Shannon entropy (bits) of a list column of characters, per row."""
    return chars.list.eval(
        pl.element()
        .value_counts(sort=True)  # a fixed summation order: the same bits for any row order
        .struct.field("count")
        .cast(pl.Float64)
        .pipe(lambda c: -((c / c.sum()) * (c / c.sum()).log(2)).sum())
    ).list.first()


@detector(
    "dns.tunnel",
    reads="dns",
    key=_KEY,
    attack=("T1071.004", "T1048"),
    params=DnsTunnelParams,
    derive={"dns": {"domain": registered_domain(pl.col("query"))}},
)
def dns_tunnel(dns: pl.LazyFrame, p: DnsTunnelParams) -> pl.LazyFrame:
    """Client/domain pairs with many distinct subdomains that are encoded, fetched as TXT/NULL,
    or simply too many."""
    every = f"{int(timedelta(minutes=p.window_minutes).total_seconds() * 1_000_000)}us"
    names = (
        query_domains(dns)
        .select(
            "query",
            "domain",
            sub=pl.col("name").str.head(
                pl.col("name").str.len_chars() - pl.col("domain").str.len_chars() - 1
            ),
        )
        .filter(pl.col("sub").str.len_chars() > 0)
    )
    q = dns.join(names, on="query", how="inner", maintain_order="left").with_columns(
        channel=pl.col("qtype_name").is_in(CHANNEL_QTYPES).fill_null(False),
        window=pl.col("ts").dt.truncate(every),
    )
    candidates = threshold(
        q,
        key=_KEY,
        window=timedelta(minutes=p.window_minutes),
        at_least=min(p.min_unique_subdomains, p.min_channel_subdomains),
        distinct="sub",
        sparse=True,  # a day's (client, domain) pairs are many; tunnels are few
    )
    shape = (
        q.join(candidates.select(*_KEY, "window"), on=[*_KEY, "window"], how="semi")
        .group_by(*_KEY, "window")
        .agg(
            channel_share=pl.col("channel").mean(),
            subs=pl.col("sub").unique().sort(),
            channel_subs=pl.col("sub").filter(pl.col("channel")).n_unique(),
        )
        .with_columns(
            mean_len=pl.col("subs").list.eval(pl.element().str.len_chars()).list.mean(),
            sub_bytes=pl.col("subs").list.eval(pl.element().str.len_bytes()).list.sum(),
            entropy=_entropy(
                pl.col("subs")
                .list.eval(pl.element().str.replace_all(".", "", literal=True))
                .list.join("")
                .str.split("")
            ),
        )
        .drop("subs")
    )
    found = (
        candidates.join(shape, on=[*_KEY, "window"], how="inner")
        .with_columns(
            encoded=(pl.col("mean_len") >= p.min_mean_length)
            & (pl.col("entropy") >= p.min_entropy)
            & (pl.col("distinct_n") >= p.min_unique_subdomains),
            command=(pl.col("channel_share") >= p.min_channel_share)
            & (pl.col("channel_subs") >= p.min_channel_subdomains),
            volume=pl.col("distinct_n") >= p.volume_unique_subdomains,
            exfil=pl.col("sub_bytes") >= p.exfil_bytes,
        )
        .filter(pl.col("encoded") | pl.col("command") | pl.col("volume"))
    )
    uniq = pl.col("distinct_n")
    how = pl.concat_str(
        [
            pl.when("encoded").then(pl.format("encoded names (mean {} chars, {} bits/char)",
                                               pl.col("mean_len").round(1), pl.col("entropy").round(2))),
            pl.when("command").then(pl.format("{}% TXT/NULL queries",
                                               (100 * pl.col("channel_share")).round(0).cast(pl.Int64))),
            pl.when("volume").then(pl.lit("subdomain volume")),
        ],
        separator=", ",
        ignore_nulls=True,
    )  # fmt: skip
    techniques = (
        pl.when("exfil")
        .then(pl.lit(["T1071.004", "T1048"], dtype=pl.List(pl.String)))
        .otherwise(pl.lit(["T1071.004"], dtype=pl.List(pl.String)))
    )
    signals = (
        pl.col("encoded").cast(pl.Int32)
        + pl.col("command").cast(pl.Int32)
        + pl.col("volume").cast(pl.Int32)
    )
    return alerts(
        found,
        detector_id="dns.tunnel",
        techniques=techniques,
        severity=pl.when((signals >= 2) | pl.col("exfil"))
        .then(pl.lit("high"))
        .otherwise(pl.lit("medium")),
        confidence=pl.min_horizontal(
            pl.lit(0.99), 0.55 + 0.15 * signals + 0.1 * (uniq / p.min_unique_subdomains).log(10)
        ),
        summary=pl.format(
            "{} sent {} distinct subdomains of {} ({}; {} bytes of names): DNS tunnel or C2 channel",
            pl.col("orig_h"),
            uniq,
            pl.col("domain"),
            how,
            pl.col("sub_bytes"),
        ),
        src=pl.col("orig_h"),
        dst=None,
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="dns",
        evidence=pl.col("uids").list.unique().list.sort(),
        key=pl.format("{}|{}", pl.col("orig_h"), pl.col("domain")),
        domains=pl.concat_list(pl.col("domain")),
    )
