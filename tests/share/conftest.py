"""Patrol reports of real shared captures, made once per session for the export tests.

The intel feed written here is the test's own (one indicator a partner marks TLP:AMBER, tied to
an intrusion set); the capture is the shared DDoS trace whose reflector it names, so the report
carries an ``intel.match`` alert and an attribution hypothesis, as a real deployment would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mamori.config import Settings
from mamori.detect.detectors.intel_match import IntelMatchParams
from mamori.intel.store import import_files
from mamori.patrol import patrol

CAPTURES = {
    # C2 beaconing over HTTP, internal hosts only
    "beacon": "zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/sandcat.pcap",
    # SSH password guessing from a private address
    "sshguess": "zeek-btest/Traces/ssh/sshguess.pcap",
    # commands over DNS TXT queries and responses
    "dns_c2": "evtx-attack-samples/Command and Control/cmds over dns txt queries and reponses.pcap",
    # cleartext credentials sent to a routable server (AgentTesla exfiltration)
    "credentials": "zeek-detector-pcaps/zeek-agenttesla-detector/testing/Traces/"
    "f9421792-7d2c-47d3-90e0-07eb54ae12fa.pcap",
    # DNS amplification with routable reflectors, plus a partner's AMBER indicator for one
    "amplification": "pcaps-ddos-stopddos/amp.dns.RRSIG.fragmented.pcap",
}
PARTNER_INDICATOR = "45.146.165.208"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"


def partner_feed(path: Path) -> Path:
    ind = "indicator--0b7e4b1e-8f54-4c33-9d38-2f43a0c1a002"
    actor = "intrusion-set--0b7e4b1e-8f54-4c33-9d38-2f43a0c1a003"
    stamp = {"created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z"}
    bundle = {
        "type": "bundle",
        "id": "bundle--0b7e4b1e-8f54-4c33-9d38-2f43a0c1a001",
        "objects": [
            {"type": "indicator", "spec_version": "2.1", "id": ind, **stamp,
             "name": "reflector", "pattern": f"[ipv4-addr:value = '{PARTNER_INDICATOR}']",
             "pattern_type": "stix", "valid_from": "2020-01-01T00:00:00Z", "confidence": 80,
             "object_marking_refs": [AMBER]},
            {"type": "intrusion-set", "spec_version": "2.1", "id": actor, **stamp,
             "name": "Example Reflector Crew"},
            {"type": "relationship", "spec_version": "2.1", **stamp,
             "id": "relationship--0b7e4b1e-8f54-4c33-9d38-2f43a0c1a004",
             "relationship_type": "indicates", "source_ref": ind, "target_ref": actor},
        ],
    }  # fmt: skip
    path.write_text(json.dumps(bundle))
    return path


@pytest.fixture(scope="session")
def reports(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """name -> report.json content; ``amplification`` ran with the partner's intel."""
    root = tmp_path_factory.mktemp("share-patrol")
    store = root / "intel"
    import_files([partner_feed(root / "partner.json")], store, source="partner-x")
    out: dict[str, dict[str, Any]] = {}
    for name, capture in CAPTURES.items():
        params = {"intel.match": IntelMatchParams(store=str(store))}
        result = patrol([data_dir / capture], root / name / "lake", root / name, Settings(), params)
        out[name] = json.loads(result.json_path.read_text())
        out[name]["_path"] = str(result.json_path)
    return out
