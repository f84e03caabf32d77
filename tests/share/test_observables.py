"""What of an incident becomes an indicator; the intel.match summary read as the detector writes it."""

from __future__ import annotations

from pathlib import Path

from mamori.detect.detectors.intel_match import IntelMatchParams
from mamori.detect.engine import run_detectors
from mamori.intel.store import import_files
from mamori.share.observables import Observable, incident_observables, intel_matches
from mamori.share.tlp import Tlp
from support.golden import capture_frames


def test_intel_match_alert_of_the_real_detector_is_read(data_dir: Path, tmp_path: Path) -> None:
    feed = tmp_path / "intel.txt"
    feed.write_text("upload.wikimedia.org\n")
    import_files([feed], tmp_path / "store", tlp="amber+strict", source="cert-x")
    run = run_detectors(
        capture_frames(data_dir / "zeek-btest/Traces/wikipedia.pcap"),
        {"intel.match": IntelMatchParams(store=str(tmp_path / "store"))},
        only=["intel.match"],
    )
    assert run.alerts.height == 1
    alert = run.alerts.row(0, named=True)
    assert intel_matches(alert) == Observable(
        "domain", "upload.wikimedia.org", "intel", Tlp.AMBER_STRICT, "cert-x"
    )
    assert intel_matches({**alert, "detector": "c2.beaconing"}) is None
    assert intel_matches({**alert, "summary": "something else"}) is None


RED_MATCH = "10.1.2.3 matched ip indicator 8.8.8.8 from feed (TLP:RED, x) in conn: 1 record(s)"


def test_victims_never_and_private_attackers_only_when_asked() -> None:
    inc = {
        "entities": {
            "attackers": ["203.0.113.9", "8.8.8.8", "10.1.2.3", "2001:4860::8888"],
            "victims": ["1.1.1.1"],
            "domains": ["Evil.Example.COM.", "localhost"],
        },
        "alerts": [{"detector": "intel.match", "summary": RED_MATCH}],
    }
    got = {o.key: o for o in incident_observables(inc)}
    # 203.0.113.9 is documentation space (not global); the victim 1.1.1.1 never appears
    assert set(got) == {
        ("ip", "8.8.8.8"),
        ("ip", "2001:4860::8888"),
        ("domain", "evil.example.com"),
    }
    assert got[("ip", "8.8.8.8")].tlp is Tlp.RED  # the intel's marking wins over the attacker's
    wide = {o.key for o in incident_observables(inc, private_addresses=True)}
    assert {("ip", "10.1.2.3"), ("ip", "203.0.113.9")} <= wide and ("ip", "1.1.1.1") not in wide
