"""``mamori intel``: import feeds into the intel store and list what it holds.

Bad input is one line naming the file and the reason (exit 2), never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from mamori.intel.common import check_tlp
from mamori.intel.schema import TLPS, TYPES, IntelFormatError, default_store
from mamori.intel.store import import_files, read

app = typer.Typer(help="Threat intelligence: import STIX 2.1, MISP and plain lists; list them.")
console = Console(stderr=True, soft_wrap=True)
out = Console()

StoreOpt = Annotated[Path | None, typer.Option("--store", help="Intel store folder.")]


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="STIX bundles, MISP events/feeds, lists.")],
    store: StoreOpt = None,
    tlp: Annotated[
        str, typer.Option(help=f"TLP when the feed has none ({', '.join(TLPS)}).")
    ] = "clear",
    source: Annotated[str | None, typer.Option(help="Feed name (default: file name).")] = None,
) -> None:
    """Import feeds; re-importing a file replaces its entries (ids are deterministic)."""
    try:
        default = check_tlp(tlp)
        summaries = import_files(files, store or default_store(), default, source)
    except (IntelFormatError, ValueError) as exc:
        console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2) from None
    table = Table("file", "format", "source", "indicators", "skipped")
    for s in summaries:
        table.add_row(str(s.path), s.format, s.source, str(s.indicators), str(s.skipped))
    out.print(table)


@app.command("list")
def list_(
    store: StoreOpt = None,
    type_: Annotated[
        str | None, typer.Option("--type", help=f"Only one type ({', '.join(TYPES)}).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows shown.")] = 50,
) -> None:
    """Indicators in the store (counts by type and source, then the first rows)."""
    frame = read(store or default_store())
    if type_ is not None:
        if type_ not in TYPES:
            console.print(f"[red]error[/]: unknown type {type_!r}; known: {', '.join(TYPES)}")
            raise typer.Exit(2)
        frame = frame.filter(pl.col("type") == type_)
    counts = Table("source", "type", "indicators", title=f"{frame.height} indicator(s)")
    for row in frame.group_by("source", "type").len().sort("source", "type").iter_rows():
        counts.add_row(row[0], row[1], str(row[2]))
    out.print(counts)
    rows = Table("type", "value", "source", "tlp", "confidence", "object")
    for r in frame.head(limit).iter_rows(named=True):
        rows.add_row(
            r["type"], r["value"], r["source"], r["tlp"], str(r["confidence"]), r["object_id"]
        )
    out.print(rows)
