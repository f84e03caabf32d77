"""The detector contract on real data: split by its key, a detector says what it says whole.

This is what makes the Spark engine possible without rewriting a detector
(``groupBy(key).applyInArrow``): every row of one key value reaches one call. Each detector runs
over the labelled captures together, whole and in disjoint key partitions; the alerts must agree.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mamori.detect.base import ALERT_COLUMNS, registered
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
    "honeypot": "honeypot",
}  # fmt: skip


@pytest.fixture(scope="module")
def frames(data_dir: Path) -> dict[str, pl.LazyFrame]:
    """The labelled captures and the golden cases, side by side in one set of tables."""
    parts: dict[str, list[pl.DataFrame]] = {}
    sources = [capture_frames(data_dir / c) for c in sorted(COVERED)]
    sources += [case_frames(name, table) for name, table in CASES.items()]
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
    frames: dict[str, pl.LazyFrame], det_id: str
) -> None:
    det = registered()[det_id]
    whole = det.run(frames).collect()
    if det_id != "intel.match":  # needs an intel store; its tests cover it
        assert whole.height > 0, "no alert: the comparison would prove nothing"
    for n in (3, 8):
        assert _canonical(run_partitioned(det, frames, n)) == _canonical(whole), n


def test_partitions_are_disjoint_and_complete(frames: dict[str, pl.LazyFrame]) -> None:
    det = registered()["ddos.amplification"]  # a derived key: the victim of the replies
    parts = partitions(det, frames, 4)
    sizes = [p["conn"].select(pl.len()).collect().item() for p in parts]
    assert sum(sizes) == frames["conn"].select(pl.len()).collect().item()
    assert sum(1 for s in sizes if s) > 1  # the rows really were split
