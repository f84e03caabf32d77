"""C2 beaconing: a labelled Caldera beacon and a labelled Sliver beacon are found, sandbox runs too
short to show a rhythm say so, normal traffic stays quiet, a golden case, the per-source partition
contract, and properties of the regularity score."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.detect.base import registered
from mamori.detect.detectors.beaconing import BeaconingParams
from mamori.detect.engine import run_detectors
from mamori.flows.pipeline import tables_of
from mamori.schema import schema_of

CASE = Path(__file__).resolve().parent.parent / "cases" / "beaconing"
ID = "c2.beaconing"
TRACES = "zeek-detector-pcaps/zeek-{}-detector/testing/Traces/{}.pcap"
SANDCAT = TRACES.format("caldera", "sandcat")
SLIVER = "c2-beacon-features/data/c2_only/sliver_beaconing_1.csv"
CONN = {
    "ts": pl.Datetime("us", "UTC"),
    "uid": pl.String,
    "orig_h": pl.String,
    "orig_p": pl.UInt16,
    "resp_h": pl.String,
    "resp_p": pl.UInt16,
    "proto": pl.String,
    "orig_bytes": pl.UInt64,
    "resp_bytes": pl.UInt64,
    "duration": pl.Float64,
}
T0 = datetime(2026, 1, 1, tzinfo=UTC)
Frames = dict[str, pl.LazyFrame]


def empty(table: str) -> pl.LazyFrame:
    return pl.from_arrow(schema_of(table).empty_table()).lazy()  # type: ignore[union-attr]


def frames_of(capture: Path) -> Frames:
    tables, _ = tables_of([capture])
    out = {t: empty(t) for t in ("conn", "http", "ssl")}
    out.update({t: pl.from_arrow(v).lazy() for t, v in tables.items() if t in out})  # type: ignore[misc]
    return out


def conn_only(conn: pl.DataFrame) -> Frames:
    return {"conn": conn.lazy(), "http": empty("http"), "ssl": empty("ssl")}


def detect(frames: Frames, params: BeaconingParams | None = None) -> pl.DataFrame:
    """Alerts of the detector alone (no engine suppression), in a canonical order."""
    return registered()[ID].run(frames, params).collect().sort("key", "first_seen")


def rows(spec: list[tuple[str, str, float, int]], tag: str = "C") -> pl.DataFrame:
    """TCP/443 conn rows from (src, dst, seconds after T0, bytes sent)."""
    return pl.DataFrame(
        [
            dict(
                zip(
                    CONN,
                    (
                        T0 + timedelta(seconds=sec),
                        f"{tag}{i}",
                        src,
                        40000,
                        dst,
                        443,
                        "tcp",
                        size,
                        100,
                        0.1,
                    ),
                    strict=True,
                )
            )
            for i, (src, dst, sec, size) in enumerate(spec)
        ],
        schema=CONN,
    )


# Real captures ---------------------------------------------------------------------------------


def test_caldera_sandcat_http_beacon(data_dir: Path) -> None:
    """Sandcat POSTs /beacon every 30-60 s over one keep-alive connection: only per-request
    events (keyed by Host) show the clock. One alert, the web-protocol technique, low-ish score
    because Sandcat's jitter is wide (intervals 33-66 s)."""
    frames = frames_of(data_dir / SANDCAT)
    got = run_detectors(frames, only=[ID]).alerts
    assert got.height == 1
    a = got.row(0, named=True)
    assert (a["src"], a["dst"], a["techniques"]) == ("172.18.0.3", "172.18.0.2", ["T1071.001"])
    assert a["count"] >= 30 and 0.8 <= a["confidence"] < 0.9
    assert a["summary"].startswith("172.18.0.3 beacons to 172.18.0.2 (36 check-ins, every ~50 s")
    busiest = (
        frames["http"]
        .filter(pl.col("uri") == "/beacon")
        .group_by("uid")
        .len()
        .sort("len", "uid", descending=True)
        .collect()
        .item(0, "uid")
    )
    assert busiest in a["evidence"]


# The C2 channel of each, with why a connection-level detector cannot call it a beacon.
UNSEEN = {
    # Manx keeps one TCP session open for its whole life (752 s): no repeated contacts.
    TRACES.format("caldera", "manx-tcp"): ("172.18.0.2:7010/tcp", 1),
    # AsyncRAT holds one TLS session; its keep-alives are inside it.
    TRACES.format("asyncrat", "cd010953-5faf-4054-86be-58c020c3a532"): (
        "181.131.218.39:4041/tcp",
        1,
    ),
    # DcRAT reconnects every ~42 s, but the 3-minute sandbox run holds three connections.
    TRACES.format("asyncrat", "30a385ed-171e-4f15-ac3f-08c96be7bfd1"): (
        "186.169.47.11:7084/tcp",
        3,
    ),
    # AgentTesla exfiltrates on a timer of minutes; the runs show a few sessions in seconds.
    TRACES.format("agenttesla", "f9421792-7d2c-47d3-90e0-07eb54ae12fa"): (
        "143.95.79.226:21/tcp",
        4,
    ),
    TRACES.format("agenttesla", "0e328ab7-12b2-4843-8717-a5b3ebef33a8"): (
        "91.92.243.114:80/tcp",
        3,
    ),
}


@pytest.mark.parametrize("capture", sorted(UNSEEN))
def test_short_sandbox_runs_cannot_show_a_rhythm(data_dir: Path, capture: str) -> None:
    frames = frames_of(data_dir / capture)
    assert run_detectors(frames, only=[ID]).alerts.height == 0
    c2, most = UNSEEN[capture]
    dst = pl.format("{}:{}/{}", "resp_h", "resp_p", "proto")
    n = frames["conn"].filter(dst == c2).select(pl.len()).collect().item()
    assert 1 <= n <= most < BeaconingParams().min_connections


def sliver_checkins(data_dir: Path) -> pl.DataFrame:
    """Sliver in beacon mode (~2 h, labelled C2 packets): each client SYN opens a connection, and
    the client's packets up to the next SYN are what it sent (frame bytes, headers included)."""
    syn = (pl.col("is_SYN") == 1) & (pl.col("is_ACK") == 0)
    pkts = pl.read_csv(data_dir / SLIVER).filter(pl.col("c2_label") == 1)
    pkts = pkts.with_columns(t=pl.col("time_since_last").cum_sum(), conn=syn.cum_sum())
    sent = pkts.filter(pl.col("src_ip") == pl.col("src_ip").filter(syn).first())
    conns = sent.group_by("conn").agg(t=pl.col("t").min(), size=pl.col("frame.len").sum())
    conns = conns.filter(pl.col("conn") > 0).sort("conn")
    return rows([("10.0.0.1", "203.0.113.1", t, b) for t, b in conns.select("t", "size").rows()])


def test_sliver_https_beacon_features(data_dir: Path) -> None:
    """127 check-ins about every 70 s are a beacon; the same count at random times is not."""
    sliver = sliver_checkins(data_dir)
    got = detect(conn_only(sliver))
    assert got.height == 1 and got["confidence"][0] > 0.85 and got["count"][0] > 100
    rng = random.Random(1)
    span = (sliver["ts"].max() - sliver["ts"].min()).total_seconds()  # type: ignore[operator]
    noise = sliver.with_columns(
        ts=pl.Series([T0 + timedelta(seconds=rng.uniform(0, span)) for _ in sliver["ts"]])
    )
    assert detect(conn_only(noise)).height == 0


def test_quiet_on_normal_traffic(data_dir: Path) -> None:
    """Every benign Zeek test trace raises no beaconing alert at all."""
    lines = (data_dir / "MANIFEST.tsv").read_text().splitlines()
    benign = [
        r[0] for r in (line.split("\t") for line in lines)
        if len(r) >= 4 and r[0].startswith("zeek-btest/") and r[0].endswith((".pcap", ".pcapng"))
        and r[3].startswith("benign")
    ]  # fmt: skip
    assert len(benign) > 50
    loud = {c: detect(frames_of(data_dir / c))["summary"].to_list() for c in benign}
    assert not {c: s for c, s in loud.items() if s}


# Golden case -----------------------------------------------------------------------------------


def golden_input() -> pl.DataFrame:
    lines = (CASE / "input.jsonl").read_text().splitlines()
    frame = pl.DataFrame([json.loads(line) for line in lines])
    return frame.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC")).cast(CONN)  # type: ignore[arg-type]


def test_golden_case() -> None:
    """A 60 s ±10 % beacon for an hour is found; the same host's browsing, a Poisson client with
    steady requests, NTP, DNS to the site resolver, mDNS, a five-check-in clock and a
    five-minute clock stay quiet."""
    got = run_detectors(conn_only(golden_input()), only=[ID]).alerts
    cols = ["src", "dst", "count", "severity", "summary", "techniques", "evidence"]
    assert got.select(cols).to_dicts() == json.loads((CASE / "expected.json").read_text())


# The partition contract ------------------------------------------------------------------------


def test_each_source_alone_gives_its_own_alerts(data_dir: Path) -> None:
    """key=("orig_h",): any split of the input by source gives the same alerts as the whole."""
    real = frames_of(data_dir / SANDCAT)
    whole = {
        "conn": pl.concat([golden_input().lazy(), real["conn"].select(list(CONN))]),
        "http": real["http"],
        "ssl": real["ssl"],
    }
    parts = [
        {t: f.filter(pl.col("orig_h").hash(7) % 3 == k) for t, f in whole.items()} for k in range(3)
    ]
    union = pl.concat([detect(p) for p in parts]).sort("key", "first_seen")
    assert union.height == 2 and union.equals(detect(whole))


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(BeaconingParams(), min_connections=2)
    with pytest.raises(ValueError):
        dataclasses.replace(BeaconingParams(), score_threshold=0.0)


# Properties ------------------------------------------------------------------------------------

SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LOOSE = BeaconingParams(  # one window for any generated series
    min_connections=4, min_span_minutes=0.0, score_threshold=0.01, window_hours=24.0 * 365
)
BEACON = st.builds(
    lambda n, period, jitter, size, seed: beacon(n, period, jitter, size, seed),
    st.integers(8, 60),
    st.floats(10, 900),
    st.floats(0, 0.2),
    st.integers(0, 2000),
    st.integers(0, 2**16),
)
NOISE = st.lists(
    st.tuples(
        st.sampled_from(["10.9.0.1", "10.9.0.2"]),
        st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.7"]),
        st.floats(0, 20_000).map(lambda s: round(s, 3)),
        st.integers(0, 3000),
    ),
    max_size=80,
)


def beacon(n: int, period: float, jitter: float, size: int, seed: int) -> list:  # type: ignore[type-arg]
    """Check-ins of 10.66.0.1 to 198.51.100.7, each ``period`` s ± ``jitter`` (a fraction) after
    the one before."""
    rng = random.Random(seed)
    gaps = [period * (1 + rng.uniform(-jitter, jitter)) for _ in range(n - 1)]
    times = [round(sum(gaps[:k]), 3) for k in range(n)]
    return [("10.66.0.1", "198.51.100.7", t, size) for t in times]


@SLOW
@given(spec=BEACON, noise=NOISE, data=st.data())
def test_row_order_does_not_matter(spec: list, noise: list, data: st.DataObject) -> None:  # type: ignore[type-arg]
    frame = rows(spec + noise)
    order = data.draw(st.permutations(list(range(frame.height))))
    assert detect(conn_only(frame[order])).equals(detect(conn_only(frame)))


@SLOW
@given(spec=BEACON, noise=NOISE)
def test_unrelated_hosts_do_not_change_a_pairs_alert(spec: list, noise: list) -> None:  # type: ignore[type-arg]
    alone = detect(conn_only(rows(spec, "B")), LOOSE)
    both = detect(conn_only(pl.concat([rows(spec, "B"), rows(noise, "N")])), LOOSE)
    assert both.filter(pl.col("src") == "10.66.0.1").equals(alone)


@SLOW
@given(n=st.integers(8, 80), period=st.floats(5, 3600), seed=st.integers(0, 2**16))
def test_a_perfect_clock_scores_higher_than_a_jittered_one(
    n: int, period: float, seed: int
) -> None:
    perfect = detect(conn_only(rows(beacon(n, period, 0.0, 300, seed))), LOOSE)
    jittered = detect(conn_only(rows(beacon(n, period, 0.9, 300, seed))), LOOSE)
    assert perfect.height == 1 and perfect["confidence"][0] > 0.85
    assert jittered.height == 0 or jittered["confidence"][0] < perfect["confidence"][0]
