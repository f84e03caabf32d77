#!/usr/bin/env python3
"""Run detection and correlation over every labelled shared capture; print docs/detection.md's table.

    python scripts/detection_table.py [--data ../shared/data] > docs/detection-table.md

Labels come from the shared data's MANIFEST.tsv; a capture is listed when its label names an
attack, an authentication failure or a C2 channel, and every benign zeek-btest trace is summarised
(worst incident severity) to show what the detectors say about normal traffic.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(capture: Path) -> tuple[list, int]:  # type: ignore[type-arg]
    import polars as pl

    from mamori.correlate.incidents import correlate
    from mamori.detect.engine import run_detectors
    from mamori.flows.pipeline import tables_of
    from mamori.schema import TABLES, schema_of

    tables, _ = tables_of([capture])
    frames = {t: pl.from_arrow(schema_of(t).empty_table()).lazy() for t in TABLES}
    frames.update({k: pl.from_arrow(v).lazy() for k, v in tables.items()})
    result = run_detectors(frames)
    return correlate(result.alerts), result.alerts.height


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    rows = list(csv.reader((args.data / "MANIFEST.tsv").open(), delimiter="\t"))
    labelled = [
        (path, label)
        for path, _size, _sha, label in (r[:4] for r in rows if len(r) >= 4)
        if path.endswith((".pcap", ".pcapng", ".cap"))
        and label.startswith(("attack:", "auth-failure:", "evtx:Command"))
    ]
    out = sys.stdout
    out.write(
        "| capture | label | incidents | techniques | worst severity |\n|---|---|---|---|---|\n"
    )
    for path, label in sorted(labelled, key=lambda x: x[1]):
        incidents, _n = run(args.data / path)
        techniques = sorted({t for i in incidents for t in i.techniques})
        worst = incidents[0].severity if incidents else "–"
        out.write(
            f"| `{path}` | {label} | {len(incidents)} | {', '.join(techniques) or '–'} | {worst} |\n"
        )
    benign = [
        path for path, _s, _h, label in (r[:4] for r in rows if len(r) >= 4)
        if path.startswith("zeek-btest/") and path.endswith((".pcap", ".pcapng")) and label.startswith("benign")
    ]  # fmt: skip
    worst: dict[str, list[str]] = {}
    for path in benign:
        incidents, _n = run(args.data / path)
        key = incidents[0].severity if incidents else "none"
        worst.setdefault(key, []).append(path)
    out.write("\n| benign zeek-btest traces | worst incident |\n|---|---|\n")
    for sev in ("critical", "high", "medium", "low", "none"):
        if sev in worst:
            shown = ", ".join(f"`{p}`" for p in worst[sev][:8]) if sev != "none" else ""
            out.write(f"| {len(worst[sev])} | {sev} {shown} |\n")


if __name__ == "__main__":
    main()
