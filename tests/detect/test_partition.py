"""The detector contract on real data: split by its key, a detector says what it says whole.

This is what makes the Spark engine possible without rewriting a detector
(``groupBy(key).applyInArrow``): every row of one key value reaches one call. Each detector runs
over the labelled captures together, whole and in disjoint key partitions; the alerts must agree.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mamori.detect.base import ALERT_COLUMNS, Params, registered
from mamori.detect.partition import partitions, run_partitioned
from support.golden import capture_frames, case_frames, empty_frames
from test_detection_real import COVERED

# Golden cases (made to set each detector off) and the table their rows default to.
CASES = {
    "amplification_ntp": "conn", "backscatter_synack": "conn", "beaconing": "conn",
    "bruteforce_ftp": "ftp", "bruteforce_http": "http", "bruteforce_service": "conn",
    "cleartext_credentials": "ftp", "ddos_synflood": "conn", "dga": "dns", "dns_tunnel": "dns",
    "exfiltration": "conn", "fingerprint": "ssl", "lateral_movement": "conn", "scan_trw": "conn",
    "ssh_bruteforce": "ssh",
    "auth_bruteforce": "auth", "auth_spraying": "auth", "auth_success_after_failures": "auth",
    "win_log_cleared": "winevt", "win_new_service": "winevt", "win_scheduled_task": "winevt",
    "honeypot": "honeypot", "suricata_alert": "eve_alert",
    "web_attack": "http", "scan_tools": "http", "stealer_mail": "smtp", "tool_transfer": "http",
    "fake_browser": "http", "half_open": "conn", "quic_c2": "conn",
}  # fmt: skip

# Real logs beside the captures: host logs' detectors (and Sigma) split by their keys too.
LOGS = (
    "evtx-attack-samples/Lateral Movement", "evtx-attack-samples/Defense Evasion",
    "logs/loghub/OpenSSH/OpenSSH_2k.log", "logs/cowrie-honeypot/cowrie.json.2018-05-06",
)  # fmt: skip


def _params(data_dir: Path) -> dict[str, Params]:
    """Sigma runs the SigmaHQ rules of Windows' built-in logs (it has no rules by default)."""
    from mamori.detect.detectors.sigma_rules import SigmaParams

    return {"sigma": SigmaParams(rules=(str(data_dir / "sigma/rules/windows/builtin"),))}


def _log_frames(data_dir: Path) -> dict[str, pl.LazyFrame]:
    from mamori.sensors.inputs import discover
    from mamori.sensors.logingest import ingest_log
    from mamori.sensors.registry import registered_sensors

    got: dict[str, list[pl.DataFrame]] = {}
    sensors = registered_sensors()
    for item in discover([data_dir / p for p in LOGS]).logs:
        stats = ingest_log(
            item.path,
            sensors[item.kind],
            lambda t, b: got.setdefault(t, []).append(pl.from_arrow(b)),  # type: ignore[arg-type]
        )
        assert stats.error is None, stats
    return {t: pl.concat(v).lazy() for t, v in got.items()}


@pytest.fixture(scope="module")
def frames(data_dir: Path) -> dict[str, pl.LazyFrame]:
    """The labelled captures and the golden cases, side by side in one set of tables."""
    parts: dict[str, list[pl.DataFrame]] = {}
    sources = [capture_frames(data_dir / c) for c in sorted(COVERED)]
    sources += [case_frames(name, table) for name, table in CASES.items()]
    sources.append(_log_frames(data_dir))
    for source in sources:
        for table, frame in source.items():
            parts.setdefault(table, []).append(frame.collect())
    out = empty_frames()
    out.update({t: pl.concat(v, how="vertical").lazy() for t, v in parts.items()})
    return out


def _canonical(alerts: pl.DataFrame) -> list[tuple]:  # type: ignore[type-arg]
    return sorted(alerts.select(ALERT_COLUMNS).rows(), key=repr)


@pytest.mark.parametrize("det_id", sorted(registered()))
def test_per_key_partitions_agree_with_the_whole(
    frames: dict[str, pl.LazyFrame], det_id: str, data_dir: Path
) -> None:
    det = registered()[det_id]
    params = _params(data_dir).get(det_id)
    whole = det.run(frames, params).collect()
    if det_id != "intel.match":  # needs an intel store; its tests cover it
        assert whole.height > 0, "no alert: the comparison would prove nothing"
    for n in (3, 8):
        assert _canonical(run_partitioned(det, frames, n, params)) == _canonical(whole), n


def test_partitions_are_disjoint_and_complete(frames: dict[str, pl.LazyFrame]) -> None:
    det = registered()["ddos.amplification"]  # a derived key: the victim of the replies
    parts = partitions(det, frames, 4)
    sizes = [p["conn"].select(pl.len()).collect().item() for p in parts]
    assert sum(sizes) == frames["conn"].select(pl.len()).collect().item()
    assert sum(1 for s in sizes if s) > 1  # the rows really were split
