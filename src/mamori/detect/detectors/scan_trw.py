"""Port scans and host sweeps by Threshold Random Walk (Jung, Paxson, Berger, Balakrishnan 2004).

A counter ("N ports in M minutes") is slow against careful scanners and noisy against busy
clients. TRW asks instead whether a source's *first contacts* (its first connection to each
distinct service: host, port and protocol) are answered the way a benign client's are. A scanner
guesses, so most of its guesses fail; a client mostly connects to services that exist. Each first
contact moves a log-likelihood ratio up (no answer) or down (answered); Wald's sequential test
declares a scanner at the first crossing of log(PD/PF), benign at log((1-PD)/(1-PF)), whichever
comes first, so masscan is caught after a handful of probes and a browser is cleared as fast.

One walk per source over (host, port) pairs covers both shapes: one host and many ports is a
vertical port scan (``dst`` is that host), one port on many hosts a horizontal sweep. A single
walk also means one alert per scanner rather than one per host or per port of a mixed scan.
Walks restart in each tumbling window, so a verdict is never permanent: a host cleared as benign
can still be caught in the next window if it starts scanning.

Replies to nothing are not first contacts: a UDP datagram from an amplifier's service port that
drew nothing back is a reflected answer (the victim's address was forged in someone's request),
and each reflector would otherwise "scan" the victim's random ports; the flood and amplification
detectors own those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numba as nb
import numpy as np
import polars as pl

from mamori.detect.base import EVIDENCE_MAX, Params, alerts, detector
from mamori.detect.detectors.amplification import SERVICES as AMPLIFIERS
from mamori.detect.windows import at_least, time_order

_TARGET = ("resp_h", "resp_p", "proto")
_MULTICAST4 = [f"{octet}." for octet in range(224, 240)]


@dataclass(frozen=True)
class ScanTrwParams(Params):
    # P(first contact answered | benign source): Jung et al.'s θ0.
    theta_benign: float = 0.8
    # P(first contact answered | scanner): θ1; most of a scanner's guesses find nothing.
    theta_scanner: float = 0.2
    # Wanted detection probability PD and false-positive probability PF; they set the walk's
    # thresholds (with the defaults, 4 more unanswered than answered first contacts = a scanner).
    detection_probability: float = 0.99
    false_positive_probability: float = 0.01
    # Fewer distinct services than this in a window is never reported, whatever the walk says:
    # a laptop finding four dead services is not worth an analyst's time.
    min_targets: int = 5
    # Walks restart in each tumbling window (state expiry, as in Zeek's scan policy).
    window_minutes: float = 15.0
    # UDP from these service ports to any other port, never answered, is a reply to nothing
    # (reflection or backscatter: answers to requests someone forged in the victim's name), not
    # a probe: the amplification detector's services. A scanner probing from source port 53 to
    # a port not listed here is the price (nmap -g 53 against high ports).
    reply_ports: tuple[int, ...] = tuple(sorted(AMPLIFIERS))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.theta_scanner < self.theta_benign < 1:
            raise ValueError("need 0 < theta_scanner < theta_benign < 1")
        if not 0 < self.false_positive_probability < self.detection_probability < 1:
            raise ValueError("need 0 < false_positive_probability < detection_probability < 1")
        if self.min_targets < 1 or self.window_minutes <= 0:
            raise ValueError("min_targets must be >= 1 and window_minutes > 0")


def reply_to_nothing(ports: tuple[int, ...]) -> pl.Expr:
    """A UDP datagram from a service port to a client port that drew nothing back: the shape of
    a reflected answer (Zeek flips a reply from a likely server port, so what is left unflipped
    here is the rest of the amplifiers: memcached, SSDP, CLDAP, chargen, ...)."""
    return (
        (pl.col("proto") == "udp")
        & pl.col("orig_p").is_in(list(ports))
        & ~pl.col("resp_p").is_in(list(ports))
        & (pl.col("resp_pkts").fill_null(0) == 0)
    ).fill_null(False)


def answered() -> pl.Expr:
    """The responder answered: SYN-ACK, ACK or data from it (Zeek history h/H/a/d), or a UDP
    reply. S0, REJ (a RST is a refusal, not a service), RSTOS0 and silent OTH are failures."""
    by_history = pl.col("history").fill_null("").str.contains("[hHad]")
    return by_history | ((pl.col("proto") == "udp") & (pl.col("resp_pkts").fill_null(0) > 0))


def unicast() -> pl.Expr:
    """Multicast and broadcast destinations never answer as a connection (mDNS, SSDP, LLMNR,
    NetBIOS): counting them would make every Windows desktop a scanner.

    Read off the text's first characters, not a regular expression: the lake holds canonical
    addresses (dotted quads without leading zeros, lower-case IPv6), so an IPv4 multicast address
    is exactly one starting "224." to "239.", and this runs on every destination of the day."""
    h = pl.col("resp_h")
    multicast4 = h.str.head(4).is_in(_MULTICAST4)
    multicast6 = h.str.head(2).is_in(["ff", "fF", "Ff", "FF"])  # not lower-casing every address
    return ~(multicast4 | h.str.ends_with(".255") | multicast6)


@nb.njit(cache=True)
def _walk(
    start: np.ndarray,
    host: np.ndarray,
    service: np.ndarray,
    ok: np.ndarray,
    steps: np.ndarray,
    table_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wald's sequential test over rows sorted by walk and time.

    ``start`` marks each walk's first row; a service is the pair (``host``: a hash of the
    destination address, ``service``: its port and protocol); ``steps`` holds (up, down,
    on_success, on_fail). Returns, per row, whether it is a first contact, and per walk the first
    contact at which the scanner bound was crossed before the benign one (0: never) and the number
    of first contacts. The log-likelihood is a·on_success + f·on_fail from integer counts of
    answered (a) and unanswered (f) first contacts, so the crossing never depends on how a running
    float sum was rounded. Services already seen are found in an open-addressing table whose slots
    belong to the walk that wrote them: a slot of an earlier walk is free, so the table is never
    cleared and needs only twice the longest walk's rows.
    """
    up, down, on_success, on_fail = steps[0], steps[1], steps[2], steps[3]
    m = host.shape[0]
    mask = table_size - 1
    keys = np.zeros(table_size, np.int64)
    keys2 = np.zeros(table_size, np.int64)
    owner = np.full(table_size, -1, np.int64)
    first = np.zeros(m, np.bool_)
    walks = 0
    for i in range(m):
        if start[i]:
            walks += 1
    hit = np.zeros(walks, np.int64)
    targets = np.zeros(walks, np.int64)
    w, n, f, decided = -1, 0, 0, False
    for i in range(m):
        if start[i]:
            w += 1
            n, f, decided = 0, 0, False
        t = host[i]
        t2 = service[i]
        h = (np.uint64(t) ^ (np.uint64(t2) * np.uint64(0xBF58476D1CE4E5B9))) * np.uint64(
            0x9E3779B97F4A7C15
        )
        slot = np.int64((h >> np.uint64(20)) & np.uint64(mask))
        seen = False
        while owner[slot] == w:
            if keys[slot] == t and keys2[slot] == t2:
                seen = True
                break
            slot = (slot + 1) & mask
        if seen:
            continue
        owner[slot] = w
        keys[slot] = t
        keys2[slot] = t2
        first[i] = True
        n += 1
        if not ok[i]:
            f += 1
        if not decided:
            llr = (n - f) * on_success + f * on_fail
            if llr >= up:
                hit[w] = n
                decided = True
            elif llr <= down:
                decided = True
        targets[w] = n
    return first, hit, targets


def _first_contacts(frame: pl.DataFrame, p: ScanTrwParams) -> pl.DataFrame:
    """The first contacts of the walks that crossed the scanner bound, in walk and time order,
    with ``hit`` and ``targets`` per walk (one batch: the whole frame of one engine call)."""
    up = math.log(p.detection_probability / p.false_positive_probability)
    down = math.log((1 - p.detection_probability) / (1 - p.false_positive_probability))
    on_fail = math.log((1 - p.theta_scanner) / (1 - p.theta_benign))
    on_success = math.log(p.theta_scanner / p.theta_benign)
    if frame.height == 0:
        return frame.with_columns(
            walk=pl.lit(0, pl.Int64), hit=pl.lit(0, pl.Int64), targets=pl.lit(0, pl.Int64)
        ).clear()
    codes = frame.select(
        src=pl.col("orig_h").cast(pl.Categorical).to_physical().fill_null(2**32 - 1).cast(pl.Int64),
        ts=pl.col("ts").dt.epoch("us").fill_null(0),
        window=pl.col("window").dt.epoch("us").fill_null(0),
        # A destination by its text's 64-bit hash, not a category code: a scan has as many
        # destinations as rows (624 k of the workload's 781 k contacts), and coding them as
        # categories took 0.26 s of the detector's 0.7. Two destinations of one source's walk
        # in one window sharing a hash would hide one first contact: for a walk of a million
        # destinations, a chance of about 3e-8.
        host=pl.col("resp_h").hash().reinterpret(signed=True),
        service=pl.col("resp_p").cast(pl.Int64).fill_null(65536) * 2
        + (pl.col("proto") == "udp").fill_null(False).cast(pl.Int64),
        ok=pl.col("ok").fill_null(False),
    )
    src, ts = codes["src"].to_numpy(), codes["ts"].to_numpy()
    # Order by source and time (the window follows from the time), then uid among equal times.
    order = time_order(src, ts, frame["uid"])
    window = codes["window"].to_numpy()[order]
    s_src = src[order]
    start = np.ones(len(order), np.bool_)
    start[1:] = (s_src[1:] != s_src[:-1]) | (window[1:] != window[:-1])
    bounds = np.flatnonzero(np.append(start, True))
    table = 1 << int(max(4, 2 * int(np.diff(bounds).max())).bit_length())
    first, hit, targets = _walk(
        start,
        codes["host"].to_numpy()[order],
        codes["service"].to_numpy()[order],
        codes["ok"].to_numpy()[order],
        np.array([up, down, on_success, on_fail]),
        table,
    )
    walk_of = np.cumsum(start) - 1
    keep = first & (hit[walk_of] > 0) & (targets[walk_of] >= p.min_targets)
    idx = order[keep]
    return frame[idx].with_columns(
        walk=pl.Series(walk_of[keep]),
        hit=pl.Series(hit[walk_of[keep]]),
        targets=pl.Series(targets[walk_of[keep]]),
    )


@detector(
    "scan.trw",
    reads="conn",
    key=("orig_h",),
    attack=("T1046",),
    params=ScanTrwParams,
    alone=True,  # every failed first contact of every source, coded and sorted
)
def scan_trw(conn: pl.LazyFrame, p: ScanTrwParams) -> pl.LazyFrame:
    """Sources whose first contacts to distinct services walk past TRW's scanner threshold."""
    every = f"{int(timedelta(minutes=p.window_minutes).total_seconds() * 1_000_000)}us"
    window = pl.col("ts").dt.truncate(every)
    # A walk with fewer rows than min_targets has fewer first contacts and is never reported:
    # the spoofed sources of a flood (millions, a packet each) never reach the coding and sort.
    # Counted over every TCP and UDP row of a source and window (a superset of its contacts, so
    # no walk that could cross is dropped), before the text tests on destinations, which then
    # run on the rows kept only: counted after them, they ran twice over every row of the day.
    tcp_udp = conn.filter(pl.col("proto").is_in(["tcp", "udp"]))
    kept = at_least(
        tcp_udp.with_columns(window=window), key=("orig_h", "window"), rows=p.min_targets
    )
    contacts = (
        kept.with_columns(_contact=unicast() & ~reply_to_nothing(p.reply_ports))
        .filter("_contact")
        .select(*_TARGET, "ts", "uid", "orig_h", "history", "resp_pkts", "window")
    )
    # Whether each was answered only for the rows kept (a pattern over the history's text).
    contacts = contacts.with_columns(ok=answered()).drop("history", "resp_pkts")
    schema = {**contacts.collect_schema(), "walk": pl.Int64, "hit": pl.Int64, "targets": pl.Int64}
    # The walk is sequential per source: one sort and one compiled pass over the whole frame
    # (``_first_contacts``); only the walks that crossed come back, with their first contacts.
    crossed = contacts.map_batches(
        lambda frame: _first_contacts(frame, p), schema=schema, streamable=False
    )
    found = crossed.group_by("walk", maintain_order=True).agg(
        pl.col("orig_h", "hit", "targets").first(),
        failed=(~pl.col("ok")).sum(),
        hosts=pl.col("resp_h").n_unique(),
        ports=pl.col("resp_p").n_unique(),
        host=pl.col("resp_h").first(),
        port=pl.col("resp_p").first(),
        first_seen=pl.col("ts").min(),
        last_seen=pl.col("ts").max(),
        uids=pl.col("uid"),
    )
    src, n, failed = pl.col("orig_h"), pl.col("targets"), pl.col("failed")
    port_scan = pl.col("hosts") == 1
    shape = (
        pl.when(port_scan)
        .then(pl.format("scanned {} ports on {}", n, pl.col("host")))
        .when(pl.col("ports") == 1)
        .then(pl.format("swept port {} on {} hosts", pl.col("port"), pl.col("hosts")))
        .otherwise(
            pl.format(
                "probed {} services ({} ports, {} hosts)", n, pl.col("ports"), pl.col("hosts")
            )
        )
    )
    return alerts(
        found,
        detector_id="scan.trw",
        techniques=("T1046",),
        severity=pl.when(n >= 500)
        .then(pl.lit("high"))
        .when(n >= 50)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low")),
        # TRW already bounds the error; what is left is how much evidence there is beyond it.
        confidence=0.6 + 0.39 * (failed / n) * pl.min_horizontal(pl.lit(1.0), n / 100),
        summary=pl.format("{} {} ({} unanswered)", src, shape, failed),
        src=src,
        dst=pl.when(port_scan).then(pl.col("host")),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=n,
        evidence_table="conn",
        # The crossing itself must be in the evidence even when it came late in the window.
        evidence=pl.col("uids").list.slice(pl.max_horizontal(pl.col("hit") - EVIDENCE_MAX, 0)),
        key=src,
    )
