"""Known malicious TLS/SSH fingerprints: AsyncRAT and DcRAT found on their real captures where
Corelight's Zeek package finds them, by the rule and not only by the captures' own certificates;
the shipped list is what its cited sources say; intel certificates are matched, intel JA3s are
left to intel.match; benign traces stay quiet."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.detect.base import DetectorConfigError, load_params
from mamori.detect.detectors.fingerprint import (
    BUILTIN,
    ID,
    FingerprintParams,
    load_entries,
    parse_list_json,
    parse_sslbl_ja3,
)
from mamori.detect.engine import run_detectors
from mamori.intel.store import import_files
from support.golden import COLUMNS, capture_frames, case_frames, detect, expected, typed

TRACES = "zeek-detector-pcaps/zeek-asyncrat-detector/testing"
ASYNCRAT = f"{TRACES}/Traces/cd010953-5faf-4054-86be-58c020c3a532.pcap"
DCRAT = f"{TRACES}/Traces/30a385ed-171e-4f15-ac3f-08c96be7bfd1.pcap"
BASELINE = {ASYNCRAT: "tests.run-asyncrat-pcap", DCRAT: "tests.run-dcrat-pcap"}


def notices(data_dir: Path, capture: str) -> list[dict[str, str]]:
    """Corelight's expected AsyncRAT notices for a capture (its btest baseline)."""
    path = data_dir / TRACES / "Baseline" / BASELINE[capture] / "notice.log"
    lines = path.read_text().splitlines()
    names = next(ln for ln in lines if ln.startswith("#fields")).split("\t")[1:]
    rows = [dict(zip(names, ln.split("\t"), strict=False)) for ln in lines if ln[:1] != "#"]
    return [r for r in rows if r["note"] == "AsyncRAT::C2_Traffic_Observed"]


def test_golden_case() -> None:
    """Default RAT certificates (and the resumed session of one), a listed JA3 in upper case, a
    JA4 and an offensive tool's HASSH are found with the weight their kind deserves; ordinary
    certificates, a look-alike name and another client of the RAT's server are not."""
    got = run_detectors(case_frames("fingerprint", "ssl"), only=[ID]).alerts
    assert got.sort("src", "dst", nulls_last=True).select(COLUMNS).to_dicts() == expected(
        "fingerprint"
    )


@pytest.mark.parametrize("capture", [ASYNCRAT, DCRAT])
def test_found_where_corelight_finds_it(data_dir: Path, capture: str) -> None:
    """One high alert per infected host and C2 server, the same pair as Zeek's notice, with
    T1573.002 (TLS C2) and T1571 (its port is no TLS service's)."""
    got = run_detectors(capture_frames(data_dir / capture), only=[ID]).alerts
    want = notices(data_dir, capture)
    assert len(want) == 1 and got.height == 1
    a = got.row(0, named=True)
    assert (a["src"], a["dst"]) == (want[0]["id.orig_h"], want[0]["id.resp_h"])
    assert f"(port {want[0]['id.resp_p']})" in a["summary"]
    assert a["severity"] == "high" and a["techniques"] == ["T1571", "T1573.002"]
    assert "Corelight zeek-asyncrat-detector" in a["summary"]


def test_dcrat_resumed_sessions_join_the_evidence(data_dir: Path) -> None:
    """DcRAT reconnects twice by TLS session resumption (no certificate is sent): the same
    channel, so the alert holds all three sessions to 186.169.47.11:7084."""
    frames = capture_frames(data_dir / DCRAT)
    ssl = frames["ssl"].collect().filter(pl.col("resp_p") == 7084)
    assert ssl["resumed"].to_list() == [False, True, True]
    a = run_detectors(frames, only=[ID]).alerts.row(0, named=True)
    assert sorted(a["evidence"]) == sorted(ssl["uid"].to_list()) and a["count"] == 3


@pytest.mark.parametrize("capture", [ASYNCRAT, DCRAT])
def test_the_rule_finds_them_without_their_certificates(
    data_dir: Path, capture: str, tmp_path: Path
) -> None:
    """The shipped list holds the two captures' certificate hashes (from Corelight's baselines);
    the subject/issuer rule alone must still find them, or the test would only be circular."""
    doc = json.loads(BUILTIN.read_text())
    rules = {"entries": [e for e in doc["entries"] if e["match"] == "pattern"]}
    assert rules["entries"]
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    p = FingerprintParams(builtin=False, lists=(str(path),))
    got = detect(ID, capture_frames(data_dir / capture), p)
    assert got.height == 1 and got["severity"].to_list() == ["high"]


def test_shipped_list_is_what_its_sources_say(data_dir: Path) -> None:
    """Every entry is valid and cites a documented source; the certificate hashes are exactly
    those of Corelight's notices in the shared data; severities follow the kind of fingerprint."""
    doc = json.loads(BUILTIN.read_text())
    entries = parse_list_json(BUILTIN.read_text(), str(BUILTIN))
    assert len(entries) == len(doc["entries"]) > 100
    sources = {
        "Corelight zeek-asyncrat-detector", "abuse.ch SSLBL JA3", "FoxIO JA4+ mapping",
        "Salesforce HASSH README",
    }  # fmt: skip
    assert {e["source"] for e in entries} == sources
    certs = {e["value"] for e in entries if e["field"] == "cert_sha256"}
    fps = set()
    for capture in BASELINE:
        for n in notices(data_dir, capture):
            fps.add(re.search(r"\[([0-9a-f]{64})", n["sub"]).group(1))  # type: ignore[union-attr]
    assert certs == fps
    for e in entries:
        server_cert = e["field"] in ("cert_sha256", "subject", "issuer")
        assert (e["severity"] == "high") == server_cert, e


def test_quiet_on_every_benign_zeek_trace(data_dir: Path) -> None:
    with (data_dir / "MANIFEST.tsv").open(newline="") as fh:
        benign = [
            r[0] for r in csv.reader(fh, delimiter="\t")
            if len(r) >= 4 and r[0].startswith("zeek-btest/") and r[0].endswith((".pcap", ".pcapng"))
            and r[3].startswith("benign")
        ]  # fmt: skip
    assert len(benign) > 50
    loud = {}
    for capture in benign:
        got = run_detectors(capture_frames(data_dir / capture), only=[ID]).alerts
        if got.height:
            loud[capture] = got["summary"].to_list()
    assert not loud, loud


def test_a_shared_ja3_is_only_low(data_dir: Path) -> None:
    """A JA3 names a TLS library, not a program, and here is the proof: an ordinary HTTPS
    request to example.com in Suricata's tests shares the JA3 listed for Tofsee. It is reported,
    but low, which is why client fingerprints never rise above low on their own."""
    capture = "suricata-verify/tests/tls/tls-certs-alert/input.pcap"
    got = run_detectors(capture_frames(data_dir / capture), only=[ID]).alerts
    assert got["severity"].to_list() == ["low"] and "Tofsee" in got["summary"][0]


def _stix(tmp_path: Path, pattern: str, name: str) -> Path:
    bundle = {
        "type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": [{
            "type": "indicator", "spec_version": "2.1",
            "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
            "name": name, "pattern": pattern, "pattern_type": "stix",
            "valid_from": "2024-01-01T00:00:00Z", "confidence": 90,
        }],
    }  # fmt: skip
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(bundle))
    return path


def test_intel_certificate_hash_is_matched(data_dir: Path, tmp_path: Path) -> None:
    """A SHA-256 indicator in the intel store that is the C2 server's certificate is found in the
    TLS handshake (intel.match has no certificate join); the intel's confidence decides."""
    fp = "81cbc8bda0c01ce01a187f7ec972e7effad1d4d63ad9043a41042591a82f4fc6"
    store = tmp_path / "store"
    import_files([_stix(tmp_path, f"[file:hashes.'SHA-256' = '{fp}']", "DcRat C2 cert")], store)
    p = FingerprintParams(builtin=False, store=str(store))
    got = detect(ID, capture_frames(data_dir / DCRAT), p)
    assert got.select("src", "dst", "severity", "confidence").rows() == [
        ("192.168.100.20", "186.169.47.11", "high", 0.9)
    ]
    assert "DcRat C2 cert" in got["summary"][0] and "listed by intel feed" in got["summary"][0]


def test_intel_ja3_is_left_to_intel_match(data_dir: Path, tmp_path: Path) -> None:
    """A JA3 indicator raises intel.match's alert, not a second one here: one indicator must not
    count twice in an incident's combined confidence."""
    store = tmp_path / "store"
    ja3 = "8b79783b7a50d6785ef5365a464f97d1"  # the DcRAT client's JA3, as ingested
    feed = tmp_path / "ja3.json"
    misp = {"Event": {"info": "DcRAT", "Attribute": [
        {"type": "ja3-fingerprint-md5", "value": ja3, "to_ids": True, "uuid": "a" * 8}
    ]}}  # fmt: skip
    feed.write_text(json.dumps(misp))
    import_files([feed], store)
    frames = capture_frames(data_dir / DCRAT)
    mine = detect(ID, frames, FingerprintParams(builtin=False, store=str(store)))
    params = load_params(None)
    params["intel.match"] = dataclasses.replace(params["intel.match"], store=str(store))  # type: ignore[call-arg]
    theirs = run_detectors(frames, params, only=["intel.match"]).alerts
    assert mine.height == 0 and theirs.height == 1


def test_each_client_alone_gives_its_own_alerts() -> None:
    """key=("orig_h",): splitting the handshakes by client gives the same alerts as the whole."""
    frames = case_frames("fingerprint", "ssl")
    ssl, ssh = frames["ssl"].collect(), frames["ssh"].collect()
    whole = detect(ID, {"ssl": ssl.lazy(), "ssh": ssh.lazy()})
    clients = sorted(set(ssl["orig_h"]) | set(ssh["orig_h"]))
    parts = [
        detect(
            ID,
            {
                "ssl": ssl.filter(pl.col("orig_h") == c).lazy(),
                "ssh": ssh.filter(pl.col("orig_h") == c).lazy(),
            },
        )
        for c in clients
    ]
    assert pl.concat(parts).sort("key", "first_seen").equals(whole)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_row_order_does_not_matter(data: st.DataObject) -> None:
    frames = case_frames("fingerprint", "ssl")
    ssl, ssh = frames["ssl"].collect(), frames["ssh"].collect()
    order = data.draw(st.permutations(list(range(ssl.height))))
    shuffled = detect(ID, {"ssl": ssl[order].lazy(), "ssh": ssh.lazy()})
    assert shuffled.equals(detect(ID, {"ssl": ssl.lazy(), "ssh": ssh.lazy()}))


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"field": "ja5", "value": "a" * 32, "family": "x"}, "exact field"),
        ({"field": "ja3", "value": "zz" * 16, "family": "x"}, "not a ja3"),
        ({"field": "ja4", "value": "t13d_bad", "family": "x"}, "not a ja4"),
        ({"field": "issuer", "match": "pattern", "value": "(", "family": "x"}, "bad pattern"),
        ({"field": "ja3", "value": "a" * 32, "family": "x", "severity": "huge"}, "severity"),
        ({"field": "ja3", "value": "a" * 32, "family": "x", "confidence": 2}, "confidence"),
        ({"field": "ja3", "value": "a" * 32}, "family"),
        ({"field": "ja3", "value": "a" * 32, "family": "x", "techniques": ["TA0011"]}, "ATT&CK"),
    ],
)
def test_bad_list_entries_are_refused_with_where(tmp_path: Path, entry: dict, reason: str) -> None:  # type: ignore[type-arg]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"entries": [entry]}))
    with pytest.raises(DetectorConfigError, match=rf"mine\.json: entry 1: .*{reason}"):
        load_entries(FingerprintParams(builtin=False, lists=(str(path),)))


def test_sslbl_csv_lists_are_read(tmp_path: Path) -> None:
    """abuse.ch's own CSV can be given as a list: its commented header is skipped, the listing
    reason names the family; a short row is refused with its line."""
    text = (
        "# ja3_md5,Firstseen,Lastseen,Listingreason\nABCDEF0123456789abcdef0123456789,a,b,Emotet\n"
    )
    got = parse_sslbl_ja3(text, "x.csv")
    assert [(e["value"], e["family"], e["severity"]) for e in got] == [
        ("abcdef0123456789abcdef0123456789", "Emotet", "low")
    ]
    with pytest.raises(DetectorConfigError, match=r"x\.csv: line 2: expected 4 columns"):
        parse_sslbl_ja3("#\nabcdef0123456789abcdef0123456789,a\n", "x.csv")


def test_lists_come_from_yaml(tmp_path: Path) -> None:
    """A YAML configuration names extra lists (YAML lists become the frozen tuple)."""
    lst = tmp_path / "extra.csv"
    lst.write_text("0123456789abcdef0123456789abcdef,a,b,Test\n")
    cfg = tmp_path / "detect.yaml"
    cfg.write_text(f"{ID}:\n  lists: ['{lst}']\n  builtin: false\n")
    p = load_params(cfg)[ID]
    assert isinstance(p, FingerprintParams) and p.lists == (str(lst),)
    assert load_entries(p)["family"].to_list() == ["Test"]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(FingerprintParams(), csv_severity="urgent")
    with pytest.raises(DetectorConfigError, match="cannot read"):
        load_entries(FingerprintParams(builtin=False, lists=("/nonexistent/list.json",)))


# Zeek's own expression in Corelight's package (scripts/main.zeek) and its Suricata rule 3000066,
# evaluated by Python's re: the oracle the shipped Polars patterns must agree with.
ZEEK_RE = re.compile(r"(((async|dc)rat|SXN) Server)|(DcRat By)", re.IGNORECASE)
SURICATA_3000066 = "By qwqdanchun"
FRAGMENT = st.sampled_from(
    ["CN=", "O=", ",", " ", "Async", "ASYNC", "DC", "dc", "Rat", "RAT", "rat", "SXN", "sxn",
     "Server", "server", "By", "by", "qwqdanchun", "Venom", "Quasar", "Let's Encrypt", "R3"]
)  # fmt: skip
NAME = st.lists(FRAGMENT, max_size=8).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(st.tuples(NAME, NAME), min_size=1, max_size=20))
def test_certificate_rule_agrees_with_zeeks_expression(names: list[tuple[str, str]]) -> None:
    """Whatever the subject and issuer, a client is flagged by the certificate rule exactly when
    Zeek's expression matches the issuer or subject, or the issuer holds "By qwqdanchun"."""
    rows = [
        {"ts": "2026-01-01T00:00:00Z", "uid": f"R{i}", "orig_h": f"10.3.0.{i}", "orig_p": 1,
         "resp_h": "192.0.2.1", "resp_p": 443, "subject": subject, "issuer": issuer}
        for i, (subject, issuer) in enumerate(names)
    ]  # fmt: skip
    got = set(detect(ID, {"ssl": typed("ssl", rows).lazy()})["src"])
    want = {
        r["orig_h"]
        for r in rows
        if ZEEK_RE.search(r["subject"]) or ZEEK_RE.search(r["issuer"])
        or SURICATA_3000066.lower() in r["issuer"].lower()
        or SURICATA_3000066.lower() in r["subject"].lower()
    }  # fmt: skip
    assert got == want
