"""The EVE sensor on what Suricata itself writes: real captures, real rules, a real eve.json.

A module fixture runs the Debian ``suricata`` over shared captures (suricata-verify tests and
Zeek's btest traces) with a configuration and rule files written here (the rules are the
suricata-verify tests' own). The EVE file, parsed line by line with ``json``, is the oracle: every
flow must become a conn row with its 5-tuple, packets and bytes, every DNS query a dns row, every
alert an eve_alert row with its sid, every TLS/SSH fingerprint its column.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.sensors.inputs import kind_of
from mamori.sensors.logingest import LogStats, ingest_log
from mamori.sensors.logs.eve import flow_uids
from mamori.sensors.registry import registered_sensors
from support.zeek_logs import read_zeek_log

CONFIG = """%YAML 1.1
---
vars:
  address-groups:
    HOME_NET: "[10.0.0.0/8,192.168.0.0/16,172.16.0.0/12,1.1.1.0/24]"
    EXTERNAL_NET: "any"
  port-groups:
    HTTP_PORTS: "80"
    SHELLCODE_PORTS: "!80"
    SSH_PORTS: "22"
    FTP_PORTS: "21"
    DNP3_PORTS: "20000"
    MODBUS_PORTS: "502"
classification-file: /etc/suricata/classification.config
reference-config-file: /etc/suricata/reference.config
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types:
        - alert:
            metadata: yes
        - http:
            extended: yes
        - dns
        - tls:
            extended: yes
        - ssh
        - smtp
        - ftp
        - flow
        - netflow
app-layer:
  protocols:
    tls:
      enabled: yes
      ja3-fingerprints: yes
      ja4-fingerprints: yes
    ssh:
      enabled: yes
      hassh: yes
    ftp:
      enabled: yes
    smtp:
      enabled: yes
    http:
      enabled: yes
    dns:
      tcp:
        enabled: yes
      udp:
        enabled: yes
"""

SV = "suricata-verify/tests"
# (capture, rule files), relative to the shared data
CASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (f"{SV}/flowbit-oring/input.pcap", (f"{SV}/alert-testmyids/test.rules",)),
    (f"{SV}/ssh-hassh/input.pcap", (f"{SV}/ssh-hassh/test.rules",)),
    (f"{SV}/ssh-newkeys/input.pcap", (f"{SV}/ssh-newkeys/test.rules",)),
    (f"{SV}/tls/tls-certs-alert/input.pcap", (f"{SV}/tls/tls-ja3s/test.rules",)),
    (f"{SV}/bug-3616-smtp/input.pcap", (f"{SV}/smtp-eve/test.rules",)),
    (f"{SV}/ftp/ftp-bounce/test.pcap", (f"{SV}/ftp/ftp-bounce/test.rules",)),
    (f"{SV}/community-id-ipv6/input.pcap", ()),
    ("zeek-btest/Traces/dns-txt-multiple.pcap", ()),
    ("zeek-btest/Traces/dns53.pcap", ()),
    ("evtx-attack-samples/Command and Control/cmds over dns txt queries and reponses.pcap", ()),
    ("zeek-btest/Traces/http/get.pcap", ()),
    ("zeek-btest/Traces/tls/google-duplicate.pcap", ()),
    ("zeek-btest/Traces/tcp/handshake-reorder.pcap", ()),
    ("zeek-btest/Traces/ssh/sshguess.pcap", ()),
)


@dataclass
class Run:
    capture: Path
    eve: Path
    events: list[dict]
    tables: dict[str, pl.DataFrame]
    stats: LogStats


def _read(path: Path) -> tuple[dict[str, pl.DataFrame], LogStats]:
    got: dict[str, list[pa.Table]] = {}
    stats = ingest_log(
        path, registered_sensors()["eve"], lambda t, b: got.setdefault(t, []).append(b)
    )
    return {t: pl.from_arrow(pa.concat_tables(bs)) for t, bs in got.items()}, stats  # type: ignore[misc]


def _rules(text: str) -> str:
    """Rule lines only; Lua rules need scripts this test does not copy."""
    keep = [ln for ln in text.splitlines() if ln.startswith("alert") and "lua:" not in ln]
    return "\n".join(keep) + "\n"


@pytest.fixture(scope="module")
def runs(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Run]:
    suricata = shutil.which("suricata")
    assert suricata, "suricata is not installed (scripts/setup-system installs it)"
    out: list[Run] = []
    for i, (capture, rule_files) in enumerate(CASES):
        work = tmp_path_factory.mktemp(f"suricata{i}")
        (work / "suricata.yaml").write_text(CONFIG)
        rules = work / "test.rules"
        rules.write_text("".join(_rules((data_dir / r).read_text()) for r in rule_files))
        pcap = data_dir / capture
        done = subprocess.run(
            [suricata, "-c", str(work / "suricata.yaml"), "-S", str(rules), "-r", str(pcap),
             "-l", str(work), "-k", "none", "--runmode", "single"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        eve = work / "eve.json"
        events = [json.loads(line) for line in eve.read_text().splitlines() if line.strip()]
        tables, stats = _read(eve)
        out.append(Run(pcap, eve, events, tables, stats))
    return out


def _canon(addr: str) -> str:
    return ipaddress.ip_address(addr).compressed


def _uid(flow_id: int) -> str:
    return flow_uids(pl.Series([flow_id], dtype=pl.Int64))[0]


def test_suricata_files_are_recognised_and_read_cleanly(runs: list[Run]) -> None:
    for run in runs:
        assert kind_of(run.eve) == "eve"
        assert run.stats.error is None and run.stats.problem is None, run.stats
        kinds = {e["event_type"] for e in run.events}
        assert kinds <= {"flow", "netflow", "alert", "dns", "http", "tls", "ssh", "smtp", "ftp"}
        assert run.stats.skipped == 0 and run.stats.warnings == []


def test_every_flow_is_a_conn_row_with_its_tuple_packets_and_bytes(runs: list[Run]) -> None:
    flows = 0
    for run in runs:
        conn = run.tables["conn"]
        by_uid = {r["uid"]: r for r in conn.iter_rows(named=True)}
        events = [e for e in run.events if e["event_type"] == "flow"]
        flows += len(events)
        assert conn.height == len(events) == len(by_uid), run.capture  # netflow halves merged away
        for e in events:
            row = by_uid[_uid(e["flow_id"])]
            f = e["flow"]
            assert row["orig_h"] == _canon(e["src_ip"]) and row["resp_h"] == _canon(e["dest_ip"])
            assert row["proto"] == e["proto"].lower().replace("ipv6-icmp", "icmp")
            if "src_port" in e:
                assert (row["orig_p"], row["resp_p"]) == (e["src_port"], e["dest_port"])
            assert (row["orig_pkts"], row["resp_pkts"]) == (f["pkts_toserver"], f["pkts_toclient"])
            assert (row["orig_ip_bytes"], row["resp_ip_bytes"]) == (
                f["bytes_toserver"],
                f["bytes_toclient"],
            )
            assert row["history"] is None and row["orig_bytes"] is None
            assert row["ts"].isoformat(timespec="microseconds")[:26] == f["start"][:26]
    assert flows >= 30


def test_conn_state_agrees_with_zeek_where_flags_can_tell(runs: list[Run], data_dir: Path) -> None:
    """The documented mapping from EVE's TCP flags against stock Zeek on the same captures."""
    total = same = 0
    for run in runs:
        rel = run.capture.relative_to(data_dir)
        zeek = read_zeek_log(data_dir / "zeek-reference" / f"{rel}.zeek" / "conn.log")
        ref = {
            (r["proto"], r["orig_h"], r["orig_p"], r["resp_h"], r["resp_p"]): r["conn_state"]
            for r in zeek.iter_rows(named=True)
        }
        for r in run.tables["conn"].iter_rows(named=True):
            key = (r["proto"], r["orig_h"], str(r["orig_p"]), r["resp_h"], str(r["resp_p"]))
            if key in ref:
                total += 1
                same += ref[key] == r["conn_state"]
    print(f"\nEVE conn_state = Zeek's on {same}/{total} flows matched by 5-tuple")
    assert total >= 30 and same / total >= 0.8


def test_dns_queries_and_answers(runs: list[Run]) -> None:
    queries = 0
    for run in runs:
        dns = run.tables.get("dns", pl.DataFrame())
        rows = {(r["uid"], r["trans_id"]): r for r in dns.iter_rows(named=True)}
        assert len(rows) == dns.height
        for e in run.events:
            if e["event_type"] != "dns":
                continue
            d = e["dns"]
            row = rows[(_uid(e["flow_id"]), d["id"])]
            assert row["query"] == d.get("rrname", row["query"])
            if d["type"] == "query":
                queries += 1
                assert row["qtype_name"] == d["rrtype"]
                assert row["orig_h"] == _canon(e["src_ip"]) and row["resp_p"] == e["dest_port"]
            else:
                assert row["rcode_name"] == d["rcode"]
                rdata = [a["rdata"] for a in d.get("answers", []) if "rdata" in a]
                assert (row["answers"] or []) == rdata
                assert row["rtt"] is None or row["rtt"] >= 0
    assert queries >= 50


def test_dns_rows_agree_with_zeek(runs: list[Run], data_dir: Path) -> None:
    """The same transactions as stock Zeek's dns.log: query, type and rcode (on port 53: Zeek
    also logs LLMNR and mDNS, which Suricata's DNS parser does not take)."""
    key = ["orig_h", "orig_p", "resp_h", "resp_p", "trans_id", "query"]
    total = same = 0
    for run in runs:
        rel = run.capture.relative_to(data_dir)
        log = data_dir / "zeek-reference" / f"{rel}.zeek" / "dns.log"
        if not log.exists() or "dns" not in run.tables:
            continue
        zeek = read_zeek_log(log).filter(pl.col("resp_p") == "53")
        zeek = zeek.select(*key, "qtype_name", "rcode_name")
        ours = run.tables["dns"].select(
            *(pl.col(k).cast(pl.String) for k in key),
            pl.col("qtype_name").fill_null("-").alias("q_ours"),
            pl.col("rcode_name").fill_null("-").alias("r_ours"),
        )
        joined = zeek.join(ours, on=key, how="left")
        total += zeek.height
        same += joined.filter(
            (pl.col("qtype_name") == pl.col("q_ours")) & (pl.col("rcode_name") == pl.col("r_ours"))
        ).height
    print(f"\nEVE dns rows = Zeek's (query, qtype, rcode) on {same}/{total} of Zeek's records")
    assert total >= 90 and same / total >= 0.95


def test_alerts_land_with_their_sids_and_flows(runs: list[Run]) -> None:
    sids = set()
    targeted = 0
    for run in runs:
        events = [e for e in run.events if e["event_type"] == "alert"]
        alerts = run.tables.get("eve_alert", pl.DataFrame())
        assert alerts.height == len(events), run.capture
        if not events:
            continue
        want = sorted((e["alert"]["signature_id"], e["alert"]["rev"]) for e in events)
        assert sorted(zip(alerts["signature_id"], alerts["rev"], strict=True)) == want
        flow_uids_ = set(run.tables["conn"]["uid"])
        assert set(alerts["flow_uid"]) <= flow_uids_  # every alert names its conn row
        assert alerts["uid"].n_unique() == alerts.height
        for e, row in zip(events, alerts.iter_rows(named=True), strict=True):
            a = e["alert"]
            assert (row["signature"], row["category"], row["severity"], row["action"]) == (
                a["signature"], a["category"], a["severity"], a["action"],
            )  # fmt: skip
            if "metadata" in a:
                assert json.loads(row["metadata"]) == a["metadata"]
            # A rule with ``target:`` makes EVE name the attacking and the attacked side.
            want: list[object] = []
            for side in (a.get("source", {}), a.get("target", {})):
                want += [_canon(side["ip"]) if "ip" in side else None, side.get("port")]
            got = [row[c] for c in ("source_ip", "source_port", "target_ip", "target_port")]
            assert got == want
            targeted += "target" in a
        sids |= set(alerts["signature_id"])
    assert {2100498, 1300013, 1, 2, 3, 4} <= sids
    assert targeted  # alert-testmyids' rule says target:dest_ip


def test_tls_ssh_smtp_ftp_fields(runs: list[Run]) -> None:
    seen = set()
    for run in runs:
        for e in run.events:
            kind = e["event_type"]
            uid = _uid(e["flow_id"])
            if kind == "tls":
                row = run.tables["ssl"].filter(pl.col("uid") == uid).row(0, named=True)
                t = e["tls"]
                assert row["server_name"] == t.get("sni")
                assert row["ja3"] == t["ja3"]["hash"] and row["ja3s"] == t["ja3s"]["hash"]
                assert row["ja4"] == (t["ja4"] if isinstance(t.get("ja4"), str) else None)
                assert row["issuer"] == t.get("issuerdn")
                assert re.fullmatch(r"TLSv1[0-3]", row["version"])
            elif kind == "http":
                row = run.tables["http"].filter(pl.col("uid") == uid).row(0, named=True)
                h = e["http"]
                assert (row["host"], row["uri"], row["method"]) == (
                    h.get("hostname"), h.get("url"), h.get("http_method"),
                )  # fmt: skip
                assert row["status_code"] == h.get("status")
                assert row["response_body_len"] == h.get("length", 0)
                assert row["trans_depth"] == e["tx_id"] + 1
            elif kind == "ssh":
                row = run.tables["ssh"].filter(pl.col("uid") == uid).row(0, named=True)
                s = e["ssh"]
                assert row["hassh"] == s["client"]["hassh"]["hash"]
                assert row["hasshServer"] == s["server"]["hassh"]["hash"]
                assert row["client"] == (
                    f"SSH-{s['client']['proto_version']}-{s['client']['software_version']}"
                )
            elif kind == "smtp":
                rows = run.tables["smtp"].filter(pl.col("uid") == uid)
                mail = e["smtp"]
                assert mail.get("mail_from") in rows["mailfrom"].to_list()
            elif kind == "ftp" and "command" in e["ftp"]:
                ftp = run.tables["ftp"].filter(pl.col("uid") == uid)
                assert e["ftp"]["command"] in ftp["command"].to_list()
            else:
                continue
            seen.add(kind)
    assert seen == {"http", "tls", "ssh", "smtp", "ftp"}


def test_netflow_halves_make_the_same_conn_rows_as_flows(runs: list[Run], tmp_path: Path) -> None:
    """With only netflow events (one per direction), the conn rows are the flow events' rows."""
    for run in runs[:3]:
        lines = run.eve.read_text().splitlines()
        only = tmp_path / "netflow.json"
        only.write_text("\n".join(ln for ln in lines if '"event_type":"netflow"' in ln) + "\n")
        got, stats = _read(only)
        assert stats.skipped == 0
        cols = ["uid", "orig_h", "orig_p", "resp_h", "resp_p", "proto", "orig_pkts",
                "resp_pkts", "orig_ip_bytes", "resp_ip_bytes", "ts"]  # fmt: skip
        flows = run.tables["conn"].select(cols).sort("uid")
        assert got["conn"].select(cols).sort("uid").equals(flows), run.capture


EVE_V1_V3 = [
    # v1: one event per answer RR (Suricata's docs, "DNS" event examples)
    {"timestamp": "2009-11-24T21:27:09.534255+0000", "flow_id": 11, "event_type": "dns",
     "src_ip": "192.168.2.7", "src_port": 53815, "dest_ip": "192.168.2.1", "dest_port": 53,
     "proto": "UDP", "dns": {"type": "query", "id": 16000, "rrname": "twitter.com",
                             "rrtype": "A", "tx_id": 0}},
    {"timestamp": "2009-11-24T21:27:09.544255+0000", "flow_id": 11, "event_type": "dns",
     "src_ip": "192.168.2.7", "src_port": 53815, "dest_ip": "192.168.2.1", "dest_port": 53,
     "proto": "UDP", "dns": {"type": "answer", "id": 16000, "rcode": "NOERROR",
                             "rrname": "twitter.com", "rrtype": "A", "ttl": 8,
                             "rdata": "199.16.156.6"}},
    {"timestamp": "2009-11-24T21:27:09.544255+0000", "flow_id": 11, "event_type": "dns",
     "src_ip": "192.168.2.7", "src_port": 53815, "dest_ip": "192.168.2.1", "dest_port": 53,
     "proto": "UDP", "dns": {"type": "answer", "id": 16000, "rcode": "NOERROR",
                             "rrname": "twitter.com", "rrtype": "A", "ttl": 8,
                             "rdata": "199.16.156.70"}},
    # v3 (Suricata 8): request/response with queries[]
    {"timestamp": "2024-01-01T00:00:00.000000+0000", "flow_id": 12, "event_type": "dns",
     "src_ip": "2001:0db8:0000:0000:0000:0000:0000:0001", "src_port": 5000,
     "dest_ip": "2001:0db8:0000:0000:0000:0000:0000:0053", "dest_port": 53, "proto": "UDP",
     "dns": {"version": 3, "type": "request", "id": 7, "flags": "0100",
             "queries": [{"rrname": "example.org", "rrtype": "AAAA"}]}},
    {"timestamp": "2024-01-01T00:00:00.250000+0000", "flow_id": 12, "event_type": "dns",
     "src_ip": "2001:0db8:0000:0000:0000:0000:0000:0001", "src_port": 5000,
     "dest_ip": "2001:0db8:0000:0000:0000:0000:0000:0053", "dest_port": 53, "proto": "UDP",
     "dns": {"version": 3, "type": "response", "id": 7, "flags": "8580", "rcode": "NOERROR",
             "queries": [{"rrname": "example.org", "rrtype": "AAAA"}],
             "answers": [{"rrname": "example.org", "rrtype": "AAAA", "ttl": 300,
                          "rdata": "2001:db8::80"}]}},
    {"timestamp": "2024-01-01T00:00:01+0000", "event_type": "stats", "stats": {"uptime": 1}},
    {"timestamp": "2024-01-01T00:00:02+0000", "event_type": "fileinfo", "flow_id": 12,
     "src_ip": "10.0.0.1", "dest_ip": "10.0.0.2"},
]  # fmt: skip


def test_dns_v1_and_v3_shapes_and_other_events_noted(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    body = [json.dumps(e) for e in EVE_V1_V3]
    body.insert(3, '{"timestamp": "2024-01-01T00:00:00+0000", "event_type": "dns"')  # cut short
    body.insert(4, '{"event_type": "alert", "flow_id": 5}')  # no timestamp
    body.append('{"timestamp": "2024-01-01T00:00:03+0000", "event_type": "flow", "flow": "?"}')
    path.write_text("\n".join(body) + "\n")
    assert kind_of(path) == "eve"  # before the generic JSON-lines sensor
    tables, stats = _read(path)
    dns = tables["dns"].sort("ts")
    assert dns["query"].to_list() == ["twitter.com", "example.org"]
    v1, v3 = dns.row(0, named=True), dns.row(1, named=True)
    assert v1["answers"] == ["199.16.156.6", "199.16.156.70"] and v1["TTLs"] == [8.0, 8.0]
    assert v1["rtt"] == pytest.approx(0.01) and v1["qtype"] == 1 and v1["rcode"] == 0
    assert v3["orig_h"] == "2001:db8::1" and v3["resp_h"] == "2001:db8::53"
    assert v3["answers"] == ["2001:db8::80"] and v3["qtype"] == 28 and v3["rtt"] == 0.25
    assert v3["AA"] and v3["RD"] and v3["RA"] and not v3["TC"]
    assert dns["uid"].to_list() == [_uid(11), _uid(12)]
    assert stats.warnings == [
        f"{path}: record 4: not an EVE event (a JSON object in EVE's shape, with event_type)",
        f"{path}: record 10: not an EVE event (a JSON object in EVE's shape, with event_type)",
        f"{path}: record 5: no timestamp it could read",
        f"{path}: record 8: 1 EVE stats events skipped (no lake table for them)",
        f"{path}: record 9: 1 EVE fileinfo events skipped (no lake table for them)",
    ]
    assert stats.skipped == 5


def test_an_event_without_proto_or_dns_type_is_no_failed_file(tmp_path: Path) -> None:
    """Events damaged in transit (found by fuzz/fuzz_logs.py): one with no proto is warned about
    and skipped; a dns event with no type is neither query nor answer but keeps its own time."""
    no_proto = dict(EVE_V1_V3[0], flow_id=20)
    del no_proto["proto"]
    no_type = json.loads(json.dumps(EVE_V1_V3[0]))
    no_type["flow_id"] = 21
    del no_type["dns"]["type"]
    path = tmp_path / "eve.json"
    path.write_text("\n".join(json.dumps(e) for e in [no_proto, no_type, EVE_V1_V3[0]]) + "\n")
    tables, stats = _read(path)
    assert stats.problem is None and stats.error is None
    assert stats.warnings == [f"{path}: record 1: no proto"]
    dns = tables["dns"].sort("uid")
    assert sorted(dns["uid"].to_list()) == sorted([_uid(21), _uid(EVE_V1_V3[0]["flow_id"])])
    assert dns["ts"].null_count() == 0


def test_dns_transactions_cut_by_batch_boundaries_stay_whole(tmp_path: Path, monkeypatch) -> None:
    """A batch of one line each: query and answer RRs arrive in three batches, one row results."""
    import mamori.sensors.logs.eve as eve
    from mamori.sensors.logs import _lines

    path = tmp_path / "eve.json"
    lines = [json.dumps(e) for e in EVE_V1_V3[:3]]
    path.write_text("\n".join(lines) + "\n")
    step = max(len(line) for line in lines) + 1  # (a line longer than a chunk never ends: #_lines)
    monkeypatch.setattr(eve, "line_batches", lambda p: _lines.line_batches(p, step))
    assert len(list(_lines.line_batches(path, step))) == 3
    tables, _ = _read(path)
    assert tables["dns"].height == 1
    assert tables["dns"]["answers"].to_list() == [["199.16.156.6", "199.16.156.70"]]


@given(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=200, unique=True))
def test_flow_uids_look_like_zeek_and_do_not_collide(ids: list[int]) -> None:
    uids = flow_uids(pl.Series(ids, dtype=pl.Int64)).to_list()
    assert all(re.fullmatch(r"C[0-9A-Za-z]{17}", u) for u in uids)
    assert len(set(uids)) == len(ids)
    assert uids == flow_uids(pl.Series(ids, dtype=pl.Int64)).to_list()  # deterministic


_ip = st.ip_addresses().map(str)


@settings(max_examples=40)  # each example is a whole file through the sensor
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "flow_id": st.integers(1, 2**62),
                "src_ip": _ip,
                "dest_ip": _ip,
                "src_port": st.integers(0, 65535),
                "dest_port": st.integers(0, 65535),
                "proto": st.sampled_from(["TCP", "UDP", "SCTP"]),
                "ts_flags": st.integers(0, 255),
                "tc_flags": st.integers(0, 255),
                "pkts": st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)),
                "bytes": st.tuples(st.integers(0, 2**50), st.integers(0, 2**50)),
                "start": st.integers(0, 2**31 - 1),
                "age": st.integers(0, 10**6),
            }
        ),
        min_size=1,
        max_size=15,
        unique_by=lambda f: f["flow_id"],
    )
)
def test_any_flow_event_becomes_its_conn_row(flows: list[dict]) -> None:
    """Whatever a flow event holds, its conn row holds the same tuple, counters and times."""
    import tempfile
    from datetime import UTC, datetime, timedelta

    lines = []
    for f in flows:
        start = datetime.fromtimestamp(f["start"], UTC) + timedelta(microseconds=123456)
        end = start + timedelta(seconds=f["age"])
        lines.append(
            json.dumps(
                {
                    "timestamp": end.strftime("%Y-%m-%dT%H:%M:%S.%f+0000"),
                    "flow_id": f["flow_id"],
                    "event_type": "flow",
                    "src_ip": f["src_ip"],
                    "src_port": f["src_port"],
                    "dest_ip": f["dest_ip"],
                    "dest_port": f["dest_port"],
                    "proto": f["proto"],
                    "flow": {
                        "pkts_toserver": f["pkts"][0],
                        "pkts_toclient": f["pkts"][1],
                        "bytes_toserver": f["bytes"][0],
                        "bytes_toclient": f["bytes"][1],
                        "start": start.strftime("%Y-%m-%dT%H:%M:%S.%f+0000"),
                        "end": end.strftime("%Y-%m-%dT%H:%M:%S.%f+0000"),
                    },
                    "tcp": {
                        "tcp_flags_ts": f"{f['ts_flags']:02x}",
                        "tcp_flags_tc": f"{f['tc_flags']:02x}",
                    },
                }
            )
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "eve.json"
        path.write_text("\n".join(lines) + "\n")
        tables, stats = _read(path)
    assert stats.skipped == 0
    conn = tables["conn"]
    assert conn["uid"].to_list() == [_uid(f["flow_id"]) for f in flows]
    for f, row in zip(flows, conn.iter_rows(named=True), strict=True):
        assert (row["orig_h"], row["resp_h"]) == (_canon(f["src_ip"]), _canon(f["dest_ip"]))
        assert (row["orig_p"], row["resp_p"]) == (f["src_port"], f["dest_port"])
        assert (row["orig_pkts"], row["resp_pkts"]) == f["pkts"]
        assert (row["orig_ip_bytes"], row["resp_ip_bytes"]) == f["bytes"]
        assert row["duration"] == pytest.approx(f["age"])
        assert row["ts"].timestamp() == pytest.approx(f["start"] + 0.123456)
        assert row["ip_proto"] == {"TCP": 6, "UDP": 17, "SCTP": 132}[f["proto"]]
        states = {"S0", "S1", "S2", "S3", "SF", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH",
                  "SHR", "OTH"}  # fmt: skip
        assert row["conn_state"] in states
        if f["proto"] == "TCP" and f["ts_flags"] & 0x02 and not f["tc_flags"] & 0x06:
            assert row["conn_state"] in ("S0", "SH", "RSTOS0")  # nothing accepted it
