"""Threshold Random Walk scan detection: real scanner captures, a golden case, normal traffic that
must stay quiet, the per-source partition contract, and properties of the walk."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.detect.base import EVIDENCE_MAX, registered
from mamori.detect.detectors.scan_trw import ScanTrwParams
from mamori.detect.engine import run_detectors
from mamori.flows.pipeline import tables_of

CASE = Path(__file__).resolve().parent.parent / "cases" / "scan_trw"
ID = "scan.trw"
MASSCAN = "pcaps-esnet-scanners/attacks/scanners/masscan/tcp_0_1000_20190821.pcap"
NMAP = "pcaps-esnet-scanners/attacks/scanners/nmap"
SYNFLOOD = "pcaps-ddos-stopddos/pkt.TCP.synflood.spoofed.pcap"
NORMAL = [
    "zeek-btest/Traces/http/get.pcap",
    "zeek-btest/Traces/ssh/sshguess.pcap",
    "zeek-btest/Traces/wikipedia.pcap",
]
CONN = {
    "ts": pl.Datetime("us", "UTC"),
    "uid": pl.String,
    "orig_h": pl.String,
    "orig_p": pl.UInt16,
    "resp_h": pl.String,
    "resp_p": pl.UInt16,
    "proto": pl.String,
    "conn_state": pl.String,
    "history": pl.String,
    "orig_pkts": pl.UInt64,
    "resp_pkts": pl.UInt64,
}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def conn_of(capture: Path) -> pl.LazyFrame:
    tables, _ = tables_of([capture])
    return pl.from_arrow(tables["conn"]).lazy()  # type: ignore[union-attr]


def detect(conn: pl.LazyFrame | pl.DataFrame, params: ScanTrwParams | None = None) -> pl.DataFrame:
    """Alerts of the detector alone (no engine suppression), in a canonical order."""
    out = registered()[ID].run({"conn": conn.lazy()}, params).collect()
    return out.sort("src", "first_seen")


def rows(spec: list[tuple[str, str, int, bool, float]], tag: str = "C") -> pl.DataFrame:
    """Conn rows from (src, dst, port, answered, seconds after T0)."""
    return pl.DataFrame(
        [
            {
                "ts": T0 + timedelta(seconds=sec),
                "uid": f"{tag}{i}",
                "orig_h": src,
                "orig_p": 40000 + i % 20000,
                "resp_h": dst,
                "resp_p": port,
                "proto": "tcp",
                "conn_state": "SF" if ok else "S0",
                "history": "ShADadFf" if ok else "S",
                "orig_pkts": 5 if ok else 1,
                "resp_pkts": 4 if ok else 0,
            }
            for i, (src, dst, port, ok, sec) in enumerate(spec)
        ],
        schema=CONN,
    )


# Real captures ---------------------------------------------------------------------------------


def test_masscan_port_scan_is_one_alert(data_dir: Path) -> None:
    """masscan -p0-1000 against one host: every probe unanswered, found as one vertical scan."""
    got = run_detectors({"conn": conn_of(data_dir / MASSCAN)}, only=[ID]).alerts
    assert got.height == 1
    a = got.row(0, named=True)
    assert (a["src"], a["dst"], a["count"], a["severity"]) == (
        "172.31.15.102",
        "198.124.152.15",
        1001,
        "high",
    )
    assert a["summary"] == "172.31.15.102 scanned 1001 ports on 198.124.152.15 (1001 unanswered)"
    assert a["techniques"] == ["T1046"] and a["evidence_table"] == "conn"
    assert len(a["evidence"]) == 50 and a["confidence"] > 0.95


@pytest.mark.parametrize("capture", ["nmap_80_all.pcap", "nmap_80_vanilla.pcap"])
def test_nmap_single_open_port_is_not_a_scan(data_dir: Path, capture: str) -> None:
    """nmap -p 80 against one web server: its only first contacts (80, and 443 for -A's scripts)
    are answered, so the walk goes *down* (two answered, LLR -2.8) and no threshold is crossed.
    At the connection level a one-port probe of an open service is a client; TRW cannot and
    should not call it a scan (the -A probes would be for an HTTP or OS-fingerprint detector)."""
    conn = conn_of(data_dir / NMAP / capture)
    assert run_detectors({"conn": conn}, only=[ID]).alerts.height == 0
    targets = conn.filter(pl.col("orig_h") == "10.87.1.10").select("resp_h", "resp_p").unique()
    assert targets.collect().height <= 2


def test_spoofed_syn_flood_is_not_thousands_of_scanners(data_dir: Path) -> None:
    """Each spoofed source sends one or two SYNs to one service: one first contact, one step up
    the walk, far from the threshold. Floods are the DDoS detectors' business."""
    conn = conn_of(data_dir / SYNFLOOD)
    assert conn.select(pl.col("orig_h").n_unique()).collect().item() > 30_000
    assert run_detectors({"conn": conn}, only=[ID]).alerts.height == 0


def normal_captures(root: Path) -> list[Path]:
    return [root / c for c in NORMAL] + sorted((root / "zeek-detector-pcaps").rglob("*.pcap"))


def test_quiet_on_normal_traffic(data_dir: Path) -> None:
    """Browsing, SSH, and Windows sandbox traces (with their mDNS/SSDP/LLMNR/NetBIOS chatter and
    malware's dead C2 servers) raise nothing."""
    captures = normal_captures(data_dir)
    assert len(captures) >= 10
    for capture in captures:
        got = run_detectors({"conn": conn_of(capture)}, only=[ID]).alerts
        assert got.height == 0, (capture, got.select("summary").to_series().to_list())


# Golden case -----------------------------------------------------------------------------------


def golden_input() -> pl.DataFrame:
    lines = (CASE / "input.jsonl").read_text().splitlines()
    frame = pl.DataFrame([json.loads(line) for line in lines])
    return frame.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC")).cast(CONN)  # type: ignore[arg-type]


def test_golden_case() -> None:
    """A port scan, a sweep and a UDP port scan; a benign client with two dead services, desktop
    multicast chatter, a spoofed flood and a four-target blip stay quiet."""
    got = run_detectors({"conn": golden_input().lazy()}, only=[ID]).alerts.sort("src")
    cols = ["src", "dst", "count", "severity", "summary", "evidence"]
    assert got.select(cols).to_dicts() == json.loads((CASE / "expected.json").read_text())


# The partition contract ------------------------------------------------------------------------


def test_each_source_alone_gives_its_own_alerts(data_dir: Path) -> None:
    """key=("orig_h",): any split of the input by source gives the same alerts as the whole."""
    real = pl.concat(
        [conn_of(data_dir / c).collect().select(list(CONN)) for c in (MASSCAN, SYNFLOOD, NORMAL[2])]
    )
    for whole in (golden_input(), real):
        parts = whole.with_columns(part=pl.col("orig_h").hash(7) % 4).partition_by("part")
        union = pl.concat([detect(p.drop("part")) for p in parts])
        assert union.sort("src", "first_seen").equals(detect(whole))
    golden = golden_input()
    per_source = [detect(g) for g in golden.partition_by("orig_h")]
    assert pl.concat(per_source).sort("src", "first_seen").equals(detect(golden))


# The walk --------------------------------------------------------------------------------------


def test_threshold_is_four_net_failures_and_a_benign_verdict_holds_for_its_window() -> None:
    """With the defaults each step is ±log 4 and the bounds ±log 99: four more failures than
    successes make a scanner. A source cleared as benign stays so for the window (Wald's test
    stops), and is walked afresh in the next one."""
    hosts = [f"192.0.2.{k}" for k in range(1, 30)]
    late = [("10.1.1.1", hosts[k], 80, False, 900.0 + k) for k in range(6)]
    cleared = [("10.1.1.1", hosts[10 + k], 80, True, float(k)) for k in range(4)]
    early = [("10.1.1.1", hosts[20 + k], 80, False, 10.0 + k) for k in range(8)]
    assert detect(rows(cleared + early)).height == 0
    got = detect(rows(cleared + early + late))
    assert got.height == 1 and got["first_seen"][0] == T0 + timedelta(seconds=900)
    mixed = [("10.1.1.2", hosts[k], 22, k == 0, float(k)) for k in range(5)]  # S F F F F
    assert detect(rows(mixed)).height == 0  # LLR 4.16 < log 99
    assert detect(rows([*mixed, ("10.1.1.2", hosts[9], 22, False, 9.0)])).height == 1


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(ScanTrwParams(), theta_scanner=0.9)
    with pytest.raises(ValueError):
        dataclasses.replace(ScanTrwParams(), false_positive_probability=0.999)
    with pytest.raises(ValueError):
        dataclasses.replace(ScanTrwParams(), window_minutes=0.0)


# Properties ------------------------------------------------------------------------------------

PROBE = st.tuples(
    st.sampled_from(["10.9.0.1", "10.9.0.2", "10.9.0.3"]),
    st.sampled_from([f"192.0.2.{k}" for k in range(1, 9)]),
    st.sampled_from([22, 80, 443, 3389, 8080]),
    st.booleans(),
    st.floats(0, 3600, allow_nan=False).map(lambda s: round(s, 3)),  # spans several windows
)
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(spec=st.lists(PROBE, max_size=80), data=st.data())
def test_row_order_does_not_matter(spec: list, data: st.DataObject) -> None:  # type: ignore[type-arg]
    frame = rows(spec)
    order = data.draw(st.permutations(list(range(frame.height))))
    assert detect(frame[order]).equals(detect(frame))


@SLOW
@given(
    scan=st.lists(PROBE.map(lambda p: ("10.66.0.1", *p[1:])), min_size=1, max_size=60),
    benign=st.lists(PROBE.map(lambda p: (*p[:3], True, p[4])), max_size=60),
)
def test_benign_sources_do_not_change_a_scanners_alerts(scan: list, benign: list) -> None:  # type: ignore[type-arg]
    alone = detect(rows(scan, "S"))
    both = detect(pl.concat([rows(scan, "S"), rows(benign, "B")]))
    assert both.equals(alone)  # nor do the benign ones alert themselves


@SLOW
@given(spec=st.lists(PROBE.map(lambda p: (*p[:3], True, p[4])), max_size=120))
def test_an_all_success_source_never_alerts(spec: list) -> None:  # type: ignore[type-arg]
    assert detect(rows(spec)).height == 0


@SLOW
@given(n=st.integers(5, 40), port=st.booleans())
def test_enough_unanswered_first_contacts_always_alert(n: int, port: bool) -> None:
    spec = [
        ("10.7.7.7", "192.0.2.1" if port else f"192.0.2.{k}", 1000 + k if port else 445, False, k)
        for k in range(n)
    ]
    got = detect(rows(spec))
    assert got.height == 1 and got["count"][0] == n
    assert (got["dst"][0] is not None) == port


def reference_walks(frame: pl.DataFrame, p: ScanTrwParams) -> list[dict]:  # type: ignore[type-arg]
    """TRW as the paper states it, one Python loop per walk: the implementation's oracle."""
    up = math.log(p.detection_probability / p.false_positive_probability)
    down = math.log((1 - p.detection_probability) / (1 - p.false_positive_probability))
    on_fail = math.log((1 - p.theta_scanner) / (1 - p.theta_benign))
    on_success = math.log(p.theta_scanner / p.theta_benign)
    window_us = int(p.window_minutes * 60_000_000)
    walks: dict[tuple, list[dict]] = {}  # type: ignore[type-arg]
    for r in sorted(frame.to_dicts(), key=lambda r: (r["ts"], r["uid"])):
        epoch = (r["ts"] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        walks.setdefault((r["orig_h"], epoch // window_us), []).append(r)
    out = []
    for (src, _), rows_ in walks.items():
        seen, first = set(), []
        for r in rows_:
            if (r["resp_h"], r["resp_p"], r["proto"]) not in seen:
                seen.add((r["resp_h"], r["resp_p"], r["proto"]))
                first.append(r)
        answered_, failed, hit = 0, 0, None
        for n, r in enumerate(first, 1):
            if r["resp_pkts"] > 0:
                answered_ += 1
            else:
                failed += 1
            llr = answered_ * on_success + failed * on_fail
            if llr >= up or llr <= down:
                hit = n if llr >= up else None
                break
        if hit is None or len(first) < p.min_targets:
            continue
        uids = [r["uid"] for r in first]
        out.append({
            "src": src, "count": len(first),
            "failed": sum(r["resp_pkts"] == 0 for r in first),
            "first_seen": first[0]["ts"], "last_seen": first[-1]["ts"],
            "evidence": uids[max(hit - EVIDENCE_MAX, 0):][:EVIDENCE_MAX],
        })  # fmt: skip
    return sorted(out, key=lambda a: (a["src"], a["first_seen"]))


TIED = st.tuples(
    st.sampled_from(["10.9.0.1", "10.9.0.2"]),
    st.sampled_from([f"192.0.2.{k}" for k in range(1, 7)]),
    st.sampled_from([22, 80, 443, 445, 3389, 8080, 8443]),
    st.booleans(),
    st.integers(0, 2400),  # whole seconds: many ties, settled by uid
)


@SLOW
@given(spec=st.lists(TIED, max_size=150), floor=st.integers(1, 8))
def test_the_walk_matches_a_plain_reference(spec: list, floor: int) -> None:  # type: ignore[type-arg]
    """The compiled walk (one sort, integer counts, a probe table) decides exactly what a plain
    per-walk loop decides: same alerts, counts, time spans and evidence, ties in time included."""
    frame = rows(spec)
    p = dataclasses.replace(ScanTrwParams(), min_targets=floor)
    got = detect(frame, p)
    want = reference_walks(frame, p)
    assert got.select("src", "count", "first_seen", "last_seen", "evidence").to_dicts() == [
        {k: a[k] for k in ("src", "count", "first_seen", "last_seen", "evidence")} for a in want
    ]
    for summary, a in zip(got["summary"], want, strict=True):
        assert summary.endswith(f"({a['failed']} unanswered)")


def test_replies_to_nothing_are_not_probes() -> None:
    """Reflected answers (UDP from an amplifier's port, nothing back) to random ports of a victim
    are not a port scan by each reflector; the same datagrams from a client port are."""
    probes = rows([("198.51.100.9", "10.0.0.81", 20000 + k, False, float(k)) for k in range(12)])
    udp = probes.with_columns(proto=pl.lit("udp"), history=pl.lit("D"))
    assert detect(udp).height == 1
    for port in ScanTrwParams().reply_ports:
        assert detect(udp.with_columns(orig_p=pl.lit(port, pl.UInt16))).height == 0
    # A probe *to* a service port from one stays a probe (nmap -g 53 against DNS and NTP).
    to_services = udp.with_columns(orig_p=pl.lit(53, pl.UInt16), resp_p=pl.Series(
        [53, 123, 161, 389, 1900, 11211, 19, 53, 123, 161, 389, 1900], dtype=pl.UInt16
    ), resp_h=pl.Series([f"10.0.0.{k}" for k in range(12)]))  # fmt: skip
    assert detect(to_services).height == 1
