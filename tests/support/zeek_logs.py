"""Read Zeek's TSV logs (``#fields`` header) into Polars with the lake's column names."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl


def read_zeek_log(path: Path) -> pl.DataFrame:
    """All columns as strings (Zeek's ``-`` unset and ``(empty)`` kept verbatim), ``id.`` stripped."""
    fields: list[str] = []
    rows: list[list[str]] = []
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        for line in fh:
            if line.startswith("#fields"):
                fields = [f.removeprefix("id.") for f in line.rstrip("\n").split("\t")[1:]]
            elif line.startswith("#"):
                continue
            else:
                rows.append(line.rstrip("\n").split("\t"))
    if not fields:
        return pl.DataFrame()
    return pl.DataFrame(rows, schema=fields, orient="row")


def reference_captures(data_dir: Path) -> list[Path]:
    """Every capture stock Zeek was run on (``zeek-reference/index.tsv``)."""
    with (data_dir / "zeek-reference" / "index.tsv").open(newline="") as fh:
        return [data_dir / row["capture"] for row in csv.DictReader(fh, delimiter="\t")]


def reference_log(data_dir: Path, capture: Path, log: str) -> Path:
    rel = capture.relative_to(data_dir)
    return data_dir / "zeek-reference" / f"{rel}.zeek" / f"{log}.log"
