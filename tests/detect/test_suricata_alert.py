"""suricata.alert: Suricata's alerts grouped per signature, source, destination and window.

The golden case is written out here (EVE alert records as the EVE sensor stores them, and the
mamori alerts they must give); the end-to-end case runs the Debian ``suricata`` with a
suricata-verify rule over a shared capture and follows its alert into a mamori alert.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from mamori.correlate.attack import technique_name
from mamori.detect.base import DetectorConfigError, load_params, registered
from mamori.detect.detectors.suricata_alert import CATEGORY_TECHNIQUES, SuricataAlertParams
from mamori.detect.engine import run_detectors
from mamori.schema import schema_of
from mamori.sensors.logingest import ingest_log
from mamori.sensors.registry import registered_sensors

ET_META = {
    "attack_target": ["Client_Endpoint"],
    "mitre_tactic_id": ["TA0011"],
    "mitre_tactic_name": ["Command_And_Control"],
    "mitre_technique_id": ["T1071"],
    "mitre_technique_name": ["Application_Layer_Protocol"],
    "signature_severity": ["Major"],
}


def _row(n: int, ts: str, sid: int, src: str, dst: str, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "ts": ts, "uid": f"E{n}", "file": "eve.json", "record": n, "host": None,
        "flow_uid": f"Cflow{n}", "flow_id": n, "src_ip": src, "src_port": 40000 + n,
        "dest_ip": dst, "dest_port": 80, "proto": "TCP", "app_proto": "http",
        "action": "allowed", "signature_id": sid, "rev": 1, "signature": f"rule {sid}",
        "category": "", "severity": 3, "metadata": None, "source_ip": None,
        "source_port": None, "target_ip": None, "target_port": None,
    }  # fmt: skip
    row.update(kw)
    return row


# fmt: off
GOLDEN = [
    # Three hits of an ET rule between the same hosts in one hour: one high alert, T1071 from
    # the rule's metadata, all three records as evidence.
    *(
        _row(i, f"2024-05-01T10:0{i}:00Z", 2024897, "10.0.0.5", "203.0.113.7", severity=1,
             category="A Network Trojan was detected", metadata=json.dumps(ET_META),
             signature="ET MALWARE Example CnC Beacon", host="sensor-1")
        for i in (1, 2, 3)
    ),
    # The same rule towards another server: its own alert.
    _row(4, "2024-05-01T10:05:00Z", 2024897, "10.0.0.5", "203.0.113.8", severity=1,
         metadata=json.dumps(ET_META)),
    # No metadata: the classification decides (a scan: T1046), severity 3 is low; one blocked.
    _row(5, "2024-05-01T10:00:00Z", 2010935, "198.51.100.9", "10.0.0.1",
         category="Detection of a Network Scan", action="blocked"),
    # Tactic only in the metadata and a class that names no behaviour: no technique, medium.
    _row(6, "2024-05-01T10:00:00Z", 2100498, "82.165.177.154", "10.16.1.11", severity=2,
         category="Potentially Bad Traffic", metadata=json.dumps({"mitre_tactic_id": ["TA0011"]})),
    # Two hours later the same signature and hosts: a second window, a second alert.
    _row(7, "2024-05-01T12:30:00Z", 2100498, "82.165.177.154", "10.16.1.11", severity=2,
         category="Potentially Bad Traffic"),
    # A rule with ``target:src_ip`` fired on the victim's reply: the rule's sides decide who
    # attacked whom, not the packet's direction.
    _row(8, "2024-05-01T10:00:00Z", 2019284, "10.0.0.9", "198.51.100.20", severity=1,
         category="Successful Administrator Privilege Gain", source_ip="198.51.100.20",
         source_port=4444, target_ip="10.0.0.9", target_port=40008),
]
# fmt: on

EXPECTED = [
    {"key": "suricata.alert|2010935|198.51.100.9|10.0.0.1", "severity": "low",
     "confidence": 0.4, "techniques": ["T1046"], "count": 1, "evidence": ["E5"],
     "summary": "Suricata: rule 2010935 (sid 2010935, Detection of a Network Scan) from "
                "198.51.100.9 to 10.0.0.1: 1 alert(s), 1 blocked", "src": "198.51.100.9",
     "dst": "10.0.0.1"},
    {"key": "suricata.alert|2019284|10.0.0.9|198.51.100.20", "severity": "high",
     "confidence": 0.8, "techniques": ["T1190"], "count": 1, "evidence": ["E8"],
     "summary": "Suricata: rule 2019284 (sid 2019284, Successful Administrator Privilege Gain) "
                "from 198.51.100.20 to 10.0.0.9: 1 alert(s)", "src": "198.51.100.20",
     "dst": "10.0.0.9"},
    {"key": "suricata.alert|2024897|10.0.0.5|203.0.113.7", "severity": "high",
     "confidence": 0.8, "techniques": ["T1071"], "count": 3, "evidence": ["E1", "E2", "E3"],
     "summary": "Suricata on sensor-1: ET MALWARE Example CnC Beacon (sid 2024897, A Network "
                "Trojan was detected) from 10.0.0.5 to 203.0.113.7: 3 alert(s)", "src": "10.0.0.5",
     "dst": "203.0.113.7"},
    {"key": "suricata.alert|2024897|10.0.0.5|203.0.113.8", "severity": "high",
     "confidence": 0.8, "techniques": ["T1071"], "count": 1, "evidence": ["E4"],
     "summary": "Suricata: rule 2024897 (sid 2024897) from 10.0.0.5 to 203.0.113.8: 1 alert(s)",
     "src": "10.0.0.5", "dst": "203.0.113.8"},
    {"key": "suricata.alert|2100498|82.165.177.154|10.16.1.11", "severity": "medium",
     "confidence": 0.6, "techniques": [], "count": 1, "evidence": ["E6"],
     "summary": "Suricata: rule 2100498 (sid 2100498, Potentially Bad Traffic) from "
                "82.165.177.154 to 10.16.1.11: 1 alert(s)", "src": "82.165.177.154",
     "dst": "10.16.1.11"},
    {"key": "suricata.alert|2100498|82.165.177.154|10.16.1.11", "severity": "medium",
     "confidence": 0.6, "techniques": [], "count": 1, "evidence": ["E7"],
     "summary": "Suricata: rule 2100498 (sid 2100498, Potentially Bad Traffic) from "
                "82.165.177.154 to 10.16.1.11: 1 alert(s)", "src": "82.165.177.154",
     "dst": "10.16.1.11"},
]  # fmt: skip


def _frame(rows: list[dict[str, object]]) -> pl.LazyFrame:
    table = pa.Table.from_pylist(
        [{**r, "ts": None} for r in rows],
        schema=schema_of("eve_alert").set(0, pa.field("ts", pa.string())),
    )
    frame = pl.from_arrow(table).with_columns(  # type: ignore[union-attr]
        ts=pl.Series([r["ts"] for r in rows]).str.to_datetime(time_unit="us", time_zone="UTC")
    )
    return frame.lazy()


def test_golden_case() -> None:
    got = registered()["suricata.alert"].run({"eve_alert": _frame(GOLDEN)}).collect()
    got = got.sort("key", "first_seen").select(
        "key", "severity", "confidence", "techniques", "count", "evidence", "summary", "src", "dst"
    )
    assert got.to_dicts() == EXPECTED
    assert got["key"].n_unique() == 5  # the last two share a key, in different windows


def test_window_is_a_parameter() -> None:
    p = SuricataAlertParams(window_minutes=1440.0)
    got = registered()["suricata.alert"].run({"eve_alert": _frame(GOLDEN)}, p).collect()
    assert got.height == 5  # 10:00 and 12:30 now fall into one (daily, tumbling) window
    with pytest.raises(ValueError, match="window_minutes"):
        SuricataAlertParams(window_minutes=0)


def test_yaml_overrides_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "detect.yaml"
    cfg.write_text("suricata.alert: {confidence_low: 0.2}\n")
    assert load_params(cfg)["suricata.alert"].confidence_low == 0.2  # type: ignore[attr-defined]
    cfg.write_text("suricata.alert: {confidence_low: 2.0}\n")
    with pytest.raises(DetectorConfigError, match="confidence_low"):
        load_params(cfg)


def test_every_mapped_technique_is_a_known_attack_technique() -> None:
    for category, techniques in CATEGORY_TECHNIQUES.items():
        assert category == category.lower()
        for t in techniques:
            assert technique_name(t) != t, (category, t)
    declared = set(registered()["suricata.alert"].attack)
    assert declared == {t for ts in CATEGORY_TECHNIQUES.values() for t in ts}


def test_classification_texts_are_suricatas_own() -> None:
    """The mapping's keys are descriptions from Suricata's shipped classification.config."""
    config = Path("/etc/suricata/classification.config")
    assert config.is_file(), "suricata is not installed (scripts/setup-system installs it)"
    shipped = {
        line.split(",")[1].strip().lower()
        for line in config.read_text().splitlines()
        if line.startswith("config classification:")
    }
    missing = set(CATEGORY_TECHNIQUES) - shipped
    assert not missing, missing


CONFIG = """%YAML 1.1
---
vars:
  address-groups: {HOME_NET: "[10.0.0.0/8]", EXTERNAL_NET: "any"}
  port-groups: {HTTP_PORTS: "80"}
classification-file: /etc/suricata/classification.config
reference-config-file: /etc/suricata/reference.config
outputs:
  - eve-log: {enabled: yes, filetype: regular, filename: eve.json, types: [alert, flow]}
"""


def test_end_to_end_from_suricata(data_dir: Path, tmp_path: Path) -> None:
    """Suricata's alert on a shared capture becomes a mamori alert naming its EVE record; the
    same rule rewritten with ``target:src_ip`` names the other side as the victim."""
    suricata = shutil.which("suricata")
    assert suricata, "suricata is not installed (scripts/setup-system installs it)"
    sv = data_dir / "suricata-verify/tests"
    (tmp_path / "suricata.yaml").write_text(CONFIG)
    rule = (sv / "alert-testmyids/test.rules").read_text().strip()
    assert "target:dest_ip;" in rule and "sid:2100498;" in rule
    flipped = rule.replace("target:dest_ip;", "target:src_ip;").replace("sid:2100498;", "sid:9;")
    (tmp_path / "test.rules").write_text(f"{rule}\n{flipped}\n")
    done = subprocess.run(
        [suricata, "-c", str(tmp_path / "suricata.yaml"),
         "-S", str(tmp_path / "test.rules"),
         "-r", str(sv / "flowbit-oring/input.pcap"), "-l", str(tmp_path), "-k", "none",
         "--runmode", "single"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    got: dict[str, list[pa.Table]] = {}
    ingest_log(
        tmp_path / "eve.json",
        registered_sensors()["eve"],
        lambda t, b: got.setdefault(t, []).append(b),
    )
    eve_alert = pl.from_arrow(pa.concat_tables(got["eve_alert"]))
    assert isinstance(eve_alert, pl.DataFrame)
    run = run_detectors({"eve_alert": eve_alert.lazy()}, only=["suricata.alert"])
    alert, other = sorted(run.alerts.to_dicts(), key=lambda a: a["key"])
    # The rule's target is the packet's destination: the reply's sender is the attacker.
    assert alert["src"] == "82.165.177.154" and alert["dst"] == "10.16.1.11"
    assert "sid 9," in other["summary"]
    assert other["src"] == "10.16.1.11" and other["dst"] == "82.165.177.154"
    assert alert["severity"] == "medium"  # classtype bad-unknown: priority 2
    assert "GPL ATTACK_RESPONSE id check returned root" in alert["summary"]
    assert alert["evidence_table"] == "eve_alert"
    assert alert["evidence"] == eve_alert.filter(pl.col("signature_id") == 2100498)["uid"].to_list()
    conn = pl.from_arrow(pa.concat_tables(got["conn"]))
    assert isinstance(conn, pl.DataFrame)
    assert set(eve_alert["flow_uid"]) <= set(conn["uid"])
