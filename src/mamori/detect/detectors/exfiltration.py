"""Exfiltration: a local host sending far more than it receives to a rare external destination.

Ordinary clients download: a page, an update, a video are many times larger than the requests
that fetch them. Stolen data goes the other way, so the sign of exfiltration at the connection
level is a large *upload*: one local host sending at least ``min_bytes`` to one external address in
a window (summed over its connections, because tools split archives and retry), at least
``min_ratio`` times what came back. Backups and cloud sync also upload, but to the same few
services from many hosts; an exfiltration server is new to the site. So the destination must be
*rare*: at most ``rare_max_hosts`` local hosts talked to it in the window.

Byte counts are bounded by what was seen on the wire: Zeek's ``orig_bytes`` comes from TCP
sequence numbers, and a sequence jump (a fuzzed or truncated capture) can turn a few packets into
gigabytes; ``orig_ip_bytes`` counts the IP bytes actually captured, so the smaller of the two is
used (the same for the responder).

ATT&CK, from the evidence the lake has: the destination's TLS server name or HTTP host naming a
cloud-storage or code-hosting service makes it Exfiltration Over Web Service (T1567.002 / .001);
a cleartext protocol (FTP, SMTP, HTTP, by detected service, else by port) makes it T1048.003
(Exfiltration Over Unencrypted Non-C2 Protocol); a channel on a non-standard port used for several
sessions in the window is the host's C2 channel (T1041); any other upload is T1048 (Exfiltration
Over Alternative Protocol). Severity is medium, high from ten times ``min_bytes`` (the grading of
every volume detector, ``mamori.detect.scoring``).

Partition key: the destination. Rarity is a property of the destination (how many local hosts
reached it), so every record needed to decide is the destination's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.scoring import volume_confidence, volume_severity
from mamori.detect.windows import key_hash

ID = "exfiltration.volume"
_PAIR = "__pair"
KEY = ("resp_h",)
MIB = 1024 * 1024
CLEARTEXT_SERVICES = ("ftp", "ftp-data", "smtp", "http")
CLEARTEXT_PORTS = (20, 21, 25, 80, 587, 8080)
# Multicast and broadcast are not destinations anyone can exfiltrate to.
NOT_UNICAST = r"^(ff[0-9a-f]{2}:|22[4-9]\.|23[0-9]\.|255\.255\.255\.255$)"
STANDARD_PORTS = (20, 21, 22, 25, 53, 80, 110, 143, 443, 465, 587, 993, 995, 8080, 8443)


@dataclass(frozen=True)
class ExfiltrationParams(Params):
    # Window over which a host's uploads to one destination are summed and rarity is judged.
    window_minutes: float = 60.0
    # Bytes one local host must send to one external destination in a window (10 MiB: larger than
    # any form post or mail, smaller than a useful document archive).
    min_bytes: int = 10 * MIB
    # Bytes sent must be at least this multiple of bytes received (a download is the opposite).
    min_ratio: float = 10.0
    # Rare: at most this many local hosts reached the destination in the window (the sender and
    # one more; a backup or sync service is reached by many).
    rare_max_hosts: int = 2
    # Sessions of one pair in a window on a non-standard port that make it a standing channel
    # (the host's C2, T1041) rather than a one-off transfer.
    channel_sessions: int = 3
    # Server-name suffixes of cloud storage (T1567.002) and code hosting (T1567.001) services.
    cloud_storage: tuple[str, ...] = (
        "dropbox.com", "dropboxusercontent.com", "drive.google.com", "docs.google.com",
        "storage.googleapis.com", "onedrive.live.com", "1drv.ms", "sharepoint.com", "box.com",
        "mega.nz", "mega.co.nz", "mega.io", "s3.amazonaws.com", "blob.core.windows.net",
        "transfer.sh", "wetransfer.com", "file.io", "anonfiles.com", "gofile.io", "pcloud.com",
    )  # fmt: skip
    code_hosting: tuple[str, ...] = (
        "github.com", "githubusercontent.com", "gitlab.com", "bitbucket.org",
    )  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_minutes <= 0 or self.min_bytes < 1 or self.min_ratio < 1:
            raise ValueError("window_minutes must be positive, min_bytes >= 1, min_ratio >= 1")
        if self.rare_max_hosts < 1 or self.channel_sessions < 1:
            raise ValueError("rare_max_hosts and channel_sessions must be >= 1")


def _suffix_of(name: pl.Expr, suffixes: tuple[str, ...]) -> pl.Expr:
    """The name equals or is a subdomain of one of ``suffixes``."""
    if not suffixes:
        return pl.lit(False)
    escaped = "|".join(s.lower().replace(".", r"\.") for s in suffixes)
    return name.str.to_lowercase().str.contains(rf"(^|\.)({escaped})$").fill_null(False)


def _ports_text(ports: pl.Expr) -> pl.Expr:
    """At most five ports, then how many more (a scan-like spread must not flood the summary)."""
    shown = ports.list.head(5).cast(pl.List(pl.String)).list.join(", ")
    more = ports.list.len().cast(pl.Int64) - 5
    return pl.when(more > 0).then(pl.format("{} and {} more", shown, more)).otherwise(shown)


@detector(
    ID,
    reads=("conn", "ssl", "http"),
    key=KEY,
    attack=("T1048", "T1048.003", "T1041", "T1567.001", "T1567.002"),
    params=ExfiltrationParams,
)
def exfiltration(
    conn: pl.LazyFrame, ssl: pl.LazyFrame, http: pl.LazyFrame, p: ExfiltrationParams
) -> pl.LazyFrame:
    """Local hosts uploading at least ``min_bytes`` to a rarely reached external destination."""
    every = f"{int(timedelta(minutes=p.window_minutes).total_seconds() * 1_000_000)}us"
    pair = ["orig_h", "resp_h", "window"]
    seen_out = pl.min_horizontal(pl.col("orig_bytes"), pl.col("orig_ip_bytes")).fill_null(0)
    seen_in = pl.min_horizontal(pl.col("resp_bytes"), pl.col("resp_ip_bytes")).fill_null(0)
    outbound = (
        conn.filter(
            pl.col("local_orig").fill_null(False)
            & ~pl.col("local_resp").fill_null(False)
            & ~pl.col("resp_h").str.contains(
                NOT_UNICAST
            )  # the lake keeps canonical (lower-case) text
        )
        .with_columns(
            window=pl.col("ts").dt.truncate(every),
            sent=seen_out.cast(pl.Int64),
            received=seen_in.cast(pl.Int64),
        )
        .with_columns(key_hash(pair).alias(_PAIR))
        .cache()
    )
    # Volume first, with plain sums only: the few pairs that reach it are all that get the
    # costlier rarity count, name lookup and evidence lists (a day of a site's connections is
    # millions of pairs, nearly all small). Summed by a hash of the pair first (grouping 7.3 M
    # rows by two address texts and the window took 0.58 s of bench_detect's day, by the hash
    # 0.28), then exactly, by the pair itself, over the rows of the hashes that passed. Two
    # pairs sharing a hash (about k^2 / 2^65 for k pairs) are summed together in the first
    # step, which can only let more rows through to the exact one, unless the other pair's
    # replies outweigh this one's upload tenfold: said here, not guarded.
    volume = (pl.col("sent") >= p.min_bytes) & (pl.col("sent") >= p.min_ratio * pl.col("received"))
    sums = (pl.col("sent").sum(), pl.col("received").sum())
    candidates = outbound.group_by(_PAIR).agg(*sums).filter(volume).select(_PAIR)
    heavy = (
        outbound.join(candidates, on=_PAIR, how="semi")
        .group_by(pair)
        .agg(*sums)
        .filter(volume)
        .cache()  # three branches below read it: compute it once
    )
    # Rarity: local hosts reaching the destination in the window, whatever they sent.
    reach = (
        outbound.join(heavy.select("resp_h", "window").unique(), on=["resp_h", "window"])
        .group_by("resp_h", "window")
        .agg(hosts=pl.col("orig_h").n_unique())
        .filter(pl.col("hosts") <= p.rare_max_hosts)
    )
    found = heavy.join(reach, on=["resp_h", "window"])
    sending = outbound.join(found.select(pair), on=pair)
    names = (
        pl.concat(
            [
                ssl.select("uid", name=pl.col("server_name")),
                http.select("uid", name=pl.col("host").str.replace(r":\d+$", "")),
            ],
            how="vertical",
        )
        .filter(pl.col("name").is_not_null() & (pl.col("name") != ""))
        .join(sending.select("uid"), on="uid", how="semi")
        .sort("uid", "name")
        .unique("uid", keep="first")
    )
    pairs = (
        sending.join(names, on="uid", how="left")
        .sort("ts", "uid")  # a total order: evidence must not depend on the input's row order
        .group_by(pair, maintain_order=True)
        .agg(
            n=pl.len(),
            first_seen=pl.col("ts").min(),
            last_seen=pl.col("ts").max(),
            uids=pl.col("uid"),
            ports=pl.col("resp_p").unique().sort(),
            services=pl.col("service").drop_nulls().unique().sort(),
            name=pl.col("name").drop_nulls().first(),
        )
        .join(found, on=pair)
    )
    service_text = pl.col("services").list.join(",")
    cleartext = service_text.str.contains(r"(^|,)(" + "|".join(CLEARTEXT_SERVICES) + r")(,|$)") | (
        (pl.col("services").list.len() == 0)
        & pl.col("ports").list.eval(pl.element().is_in(list(CLEARTEXT_PORTS))).list.any()
    )
    odd_port = pl.col("ports").list.eval(~pl.element().is_in(list(STANDARD_PORTS))).list.any()
    technique = (
        pl.when(_suffix_of(pl.col("name"), p.cloud_storage))
        .then(pl.lit("T1567.002"))
        .when(_suffix_of(pl.col("name"), p.code_hosting))
        .then(pl.lit("T1567.001"))
        .when(cleartext)
        .then(pl.lit("T1048.003"))
        .when(odd_port & (pl.col("n") >= p.channel_sessions))
        .then(pl.lit("T1041"))
        .otherwise(pl.lit("T1048"))
    )
    how = (
        pl.when(pl.col("name").is_not_null())
        .then(pl.format(" ({})", pl.col("name")))
        .otherwise(pl.lit(""))
    )
    return alerts(
        pairs.with_columns(technique=technique),
        detector_id=ID,
        techniques=pl.concat_list(pl.col("technique")),
        severity=volume_severity(pl.col("sent"), p.min_bytes),
        confidence=volume_confidence(pl.col("sent"), p.min_bytes, 0.4, 0.8),
        summary=pl.format(
            "{} sent {} MiB to {}{} on port {} and received {} KiB ({} connection(s); {} local "
            "host(s) reached it)",
            pl.col("orig_h"),
            (pl.col("sent") / MIB).round(1),
            pl.col("resp_h"),
            how,
            _ports_text(pl.col("ports")),
            (pl.col("received") / 1024).round(1),
            pl.col("n"),
            pl.col("hosts"),
        ),
        src=pl.col("orig_h"),
        dst=pl.col("resp_h"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="conn",
        evidence=pl.col("uids"),
        key=pl.format("{}|{}", pl.col("orig_h"), pl.col("resp_h")),
    )
