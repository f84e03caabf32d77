"""Tables of the labelled EVTX attack samples, for the Windows detectors' tests."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mamori.sensors.logingest import ingest_log
from mamori.sensors.registry import registered_sensors
from support.golden import empty_frames

SAMPLES = "evtx-attack-samples"


def sample_frames(path: Path) -> dict[str, pl.LazyFrame]:
    """Every lake table for one EVTX file (``winevt`` and ``auth`` filled, the rest empty)."""
    got: dict[str, list[pl.DataFrame]] = {}

    def sink(table: str, batch: object) -> None:
        got.setdefault(table, []).append(pl.from_arrow(batch))  # type: ignore[arg-type]

    stats = ingest_log(path, registered_sensors()["evtx"], sink)
    assert stats.error is None, stats
    frames = empty_frames()
    frames.update({t: pl.concat(fs).lazy() for t, fs in got.items()})
    return frames


def indexed(data_dir: Path, *words: str) -> list[str]:
    """Sample files whose name in the collection's ``index.tsv`` holds one of ``words``."""
    lines = (data_dir / SAMPLES / "index.tsv").read_text().splitlines()[1:]
    names = {line.split("\t")[0] for line in lines}
    return sorted(n for n in names if any(w.lower() in n.lower() for w in words))
