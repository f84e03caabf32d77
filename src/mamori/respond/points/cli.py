"""Commands for enforcement points, ready to mount as ``mamori respond points``.

A thin door over ``points.sync`` and the CrowdSec bouncer keys: ``enforce`` brings the points of a
``points.yaml`` up to the ledger, ``render`` prints a point's whole current state (an nft script,
an RPZ zone, an ExaBGP configuration, a list, the CrowdSec startup answer), ``bouncer add|remove``
manages the keys CrowdSec bouncers pull with. Expected failures are one line on stderr and exit code
2 (bad input) or 1 (a point or the database refused), never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from mamori.respond.ledger import Ledger
from mamori.respond.notify import NotifyError
from mamori.respond.points.crowdsec import add_bouncer, remove_bouncer
from mamori.respond.points.sync import enforce, load_points
from mamori.respond.points.targets import PointError
from mamori.store import Store

app = typer.Typer(no_args_is_help=True, help="Enforcement points: enforce, render, bouncer keys.")
bouncer_app = typer.Typer(no_args_is_help=True, help="Keys of CrowdSec bouncers pulling decisions.")
app.add_typer(bouncer_app, name="bouncer")

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="State database URL (default: MAMORI_STATE_URL or the SQLite file)."),
]
PointsOpt = Annotated[
    Path, typer.Option("--points", help="Which enforcement points, with their settings (YAML).")
]


@contextmanager
def _door(bad_input: int = 2) -> Iterator[None]:
    try:
        yield
    except (PointError, NotifyError) as e:
        err.print(f"[red]error:[/] {escape(str(e))}", markup=True, highlight=False)
        raise typer.Exit(bad_input) from e
    except SQLAlchemyError as e:
        line = str(e).splitlines()[0]
        err.print(f"[red]error:[/] state database: {escape(line)}", markup=True, highlight=False)
        raise typer.Exit(1) from e


@app.command("enforce")
def enforce_cmd(
    points: PointsOpt,
    db: DbOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Expire what ran out, then give each point what it does not carry yet (exactly once)."""
    with _door(2):
        chosen = load_points(points)
    with _door(1):
        changes = enforce(Ledger(Store(db)), chosen)
    if fmt == "json":
        typer.echo(json.dumps([
            {"point": c.point, "added": [d.id for d in c.added],
             "removed": [d.id for d in c.removed]} for c in changes
        ], indent=2))  # fmt: skip
        return
    table = Table(title=f"enforcement points from {points}")
    for col in ("point", "added", "removed"):
        table.add_column(col)
    for c in changes:
        table.add_row(c.point, str(len(c.added)), str(len(c.removed)))
    out.print(table)


@app.command()
def render(
    point: Annotated[str, typer.Argument(help="A point named in the points file.")],
    points: PointsOpt,
    db: DbOpt = None,
) -> None:
    """Print the point's whole current state from the enforced decisions."""
    with _door(2):
        chosen = {p.name: p for p in load_points(points)}
        if point not in chosen:
            raise PointError(f"{points}: no point {point!r} (it has {', '.join(chosen)})")
    with _door(1):
        active = Ledger(Store(db)).active()
        typer.echo(chosen[point].render(active, datetime.now(UTC)), nl=False)


@bouncer_app.command("add")
def bouncer_add(name: Annotated[str, typer.Argument()], db: DbOpt = None) -> None:
    """Register a bouncer and print its API key (shown once; only its hash is kept)."""
    with _door(1):
        key = add_bouncer(Store(db), name)
    typer.echo(key)


@bouncer_app.command("remove")
def bouncer_remove(name: Annotated[str, typer.Argument()], db: DbOpt = None) -> None:
    """Revoke a bouncer's key."""
    with _door(1):
        remove_bouncer(Store(db), name)
    err.print(f"bouncer {escape(name)} removed", highlight=False)
