"""``auth`` rows of real syslog files, for the authentication detectors' tests."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mamori.sensors.logingest import ingest_log
from mamori.sensors.registry import registered_sensors

OPENSSH = "logs/loghub/OpenSSH/OpenSSH_2k.log"  # loghub's labelled sshd log (under data_dir)


def syslog_auth(path: Path) -> pl.DataFrame:
    """``auth`` rows of a syslog file, as the sensor writes them (year fixed: no mtime)."""
    got: list[pl.DataFrame] = []

    def sink(table: str, batch: object) -> None:
        if table == "auth":
            got.append(pl.from_arrow(batch))  # type: ignore[arg-type]

    stats = ingest_log(path, registered_sensors()["syslog"], sink, year=2025)
    assert stats.error is None and stats.problem is None, stats
    return pl.concat(got)
