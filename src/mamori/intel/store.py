"""The intel store: one Parquet table ``indicators.parquet`` in a folder.

Re-importing a file replaces that file's rows for that source (ids are deterministic, so the same
entries keep their ids and their first ``imported`` time); entries removed from a feed disappear on
its next import. Writes go to a temporary file renamed into place, so a reader never sees half a
table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mamori.intel import honeypot, misp, plain, stix
from mamori.intel.common import read_json
from mamori.intel.schema import (
    DEFAULT_CONFIDENCE,
    SCHEMA,
    ImportResult,
    IntelFormatError,
    indicator_id,
)

TABLE = "indicators.parquet"


def detect_format(path: Path) -> str:
    """``stix``, ``misp``, ``honeypot`` or ``list``: honeypot logs and JSON files by their
    content, anything else is a list."""
    if honeypot.is_honeypot_log(Path(path)):
        return "honeypot"
    if Path(path).suffix.lower() != ".json":
        return "list"
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        return "stix"
    if isinstance(data, (dict, list)):
        return "misp"
    raise IntelFormatError(f"{path}: JSON that is neither a STIX bundle nor a MISP event")


def load_file(path: Path, default_tlp: str) -> ImportResult:
    """One feed file, by its detected format."""
    if not Path(path).is_file():
        raise IntelFormatError(f"{path}: no such file")
    fmt = detect_format(path)
    loader = {
        "stix": stix.load,
        "misp": misp.load,
        "list": plain.load,
        "honeypot": honeypot.load,
    }[fmt]
    try:
        return loader(Path(path), default_tlp)
    except RecursionError:  # a structure nested past what the importer walks
        raise IntelFormatError(f"{path}: {fmt} nested too deeply to import") from None


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given; folders (a MISP feed, a folder of bundles) expanded, manifests left out."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(
                f for f in sorted(p.rglob("*")) if f.is_file() and f.name != "manifest.json"
                and (f.suffix.lower() in (".json", ".txt", ".csv", ".list")
                     or honeypot.is_honeypot_log(f))
            )  # fmt: skip
        else:
            out.append(p)
    return out


def to_table(result: ImportResult, source: str, now: datetime) -> pa.Table:
    """Rows of the indicators schema for one import result."""
    src_file = str(result.path.resolve())
    rows: dict[str, list[object]] = {f.name: [] for f in SCHEMA}
    for ind in result.indicators:
        rows["id"].append(indicator_id(source, ind.object_id, ind.type, ind.value, ind.port))
        rows["type"].append(ind.type)
        rows["value"].append(ind.value)
        rows["port"].append(ind.port)
        rows["source"].append(source)
        rows["source_file"].append(src_file)
        rows["object_id"].append(ind.object_id)
        rows["name"].append(ind.name)
        rows["tlp"].append(ind.tlp)
        conf = DEFAULT_CONFIDENCE if ind.confidence is None else int(ind.confidence)
        rows["confidence"].append(max(0, min(100, conf)))
        rows["to_ids"].append(ind.to_ids)
        rows["valid_from"].append(ind.valid_from)
        rows["valid_until"].append(ind.valid_until)
        rows["kill_chain_phases"].append(ind.kill_chain_phases)
        rows["labels"].append([str(x) for x in ind.labels])
        rows["related"].append(ind.related)
        rows["imported"].append(now)
    table = pa.table(rows, schema=SCHEMA)
    # The same observable twice in one object (a pattern naming an address twice) is one row.
    return (
        pl.from_arrow(table).unique("id", keep="first", maintain_order=True).to_arrow().cast(SCHEMA)
    )  # type: ignore[union-attr]


def read(store: Path) -> pl.DataFrame:
    """The store's indicators (an empty table of the schema when the store is empty or absent)."""
    path = Path(store) / TABLE
    if not path.is_file():
        return pl.from_arrow(SCHEMA.empty_table())  # type: ignore[return-value]
    return pl.from_arrow(pq.read_table(path).cast(SCHEMA))  # type: ignore[return-value]


@dataclass
class ImportSummary:
    path: Path
    format: str
    source: str
    indicators: int
    skipped: int
    reasons: list[tuple[str, str]]


def import_files(
    paths: Iterable[Path], store: Path, tlp: str = "clear", source: str | None = None
) -> list[ImportSummary]:
    """Import feed files into the store; all files are read before anything is written.

    Why all first: a malformed file in a batch must not leave the store half-updated.
    """
    now = datetime.now(UTC)
    results = [load_file(p, tlp) for p in expand(paths)]
    tables = [(r, source or r.path.stem, to_table(r, source or r.path.stem, now)) for r in results]
    current = read(store)
    replaced = pl.DataFrame(
        {
            "source": [s for _, s, _ in tables],
            "source_file": [str(r.path.resolve()) for r, _, _ in tables],
        }
    )
    kept = current.join(replaced, on=["source", "source_file"], how="anti")
    first_seen = current.select("id", "imported")
    new = (
        pl.concat([pl.from_arrow(t) for _, _, t in tables], how="vertical")
        if tables
        else current.clear()
    )  # type: ignore[misc]
    new = (
        new.join(first_seen.rename({"imported": "_old"}), on="id", how="left")
        .with_columns(imported=pl.coalesce("_old", "imported"))
        .drop("_old")
    )
    merged = (
        pl.concat([kept, new.select(kept.columns)], how="vertical")
        .unique("id", keep="last", maintain_order=True)
        .sort("source", "type", "value", "id")
    )
    write(merged, store)
    return [
        ImportSummary(r.path, r.format, s, t.num_rows, len(r.skipped), r.skipped)
        for r, s, t in tables
    ]


def write(frame: pl.DataFrame, store: Path) -> Path:
    """Atomically replace the store's table."""
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    path = store / TABLE
    tmp = store / f".{TABLE}.{os.getpid()}.tmp"
    pq.write_table(frame.to_arrow().cast(SCHEMA), tmp, compression="zstd")
    tmp.replace(path)
    return path
