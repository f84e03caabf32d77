"""Commands of the respond stage (mounted by mamori.cli as ``mamori respond``).

A thin door over ``mamori.respond.ledger``: every command opens the state database (``--db URL``,
else ``MAMORI_STATE_URL``, else the SQLite file under the XDG data home), calls one ledger method
and prints the result. Expected failures (a bad policy, profiles or report file; an unknown or
non-pending decision; a broken audit log) are one line on stderr and exit code 1 or 2, never a
traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from mamori.respond.decision import State
from mamori.respond.duration import format_duration
from mamori.respond.incidents import ReportError
from mamori.respond.ledger import Entry, Ledger, LedgerError
from mamori.respond.points.cli import app as points_app
from mamori.respond.policy import PolicyError, load_policy
from mamori.respond.profiles import ProfileError, load_profiles
from mamori.store import Store

app = typer.Typer(no_args_is_help=True)
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log of decisions.")
app.add_typer(audit_app, name="audit")
app.add_typer(
    points_app,
    name="points",
    help="Enforcement points: bring them up to the ledger, render their state, bouncer keys.",
)

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


class Format(StrEnum):
    json = "json"
    table = "table"


DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="State database URL (default: MAMORI_STATE_URL or the SQLite file)."),
]
PolicyOpt = Annotated[
    Path | None, typer.Option("--policy", help="The guard's policy file (YAML, docs/respond.md).")
]
FormatOpt = Annotated[Format, typer.Option("--format", help="json for machines, table for people.")]
ByOpt = Annotated[str, typer.Option("--by", help="Who decides (kept in the audit log).")]


@contextmanager
def _door() -> Iterator[None]:
    """Expected errors become one line and an exit code: 2 for bad input, 1 for refusals."""
    try:
        yield
    except (PolicyError, ProfileError, ReportError) as e:
        err.print(f"[red]error:[/] {escape(str(e))}", markup=True, highlight=False)
        raise typer.Exit(2) from e
    except LedgerError as e:
        err.print(f"[red]refused:[/] {escape(str(e))}", markup=True, highlight=False)
        raise typer.Exit(1) from e
    except SQLAlchemyError as e:
        err.print(
            f"[red]error:[/] state database: {escape(str(e).splitlines()[0])}",
            markup=True,
            highlight=False,
        )
        raise typer.Exit(1) from e


def _ledger(db: str | None, policy: Path | None = None, profiles: Path | None = None) -> Ledger:
    return Ledger(
        Store(db),
        load_policy(policy) if policy is not None else None,
        load_profiles(profiles) if profiles is not None else None,
    )


def _show(entries: Sequence[Entry], fmt: Format, title: str) -> None:
    if fmt is Format.json:
        typer.echo(json.dumps([e.to_json() for e in entries], indent=2))
        return
    table = Table(title=title)
    for col in ("id", "action", "target", "verdict", "state", "ttl", "incident", "reasons"):
        wrap = col in ("target", "incident", "reasons")
        table.add_column(col, no_wrap=not wrap, overflow="fold" if wrap else "ellipsis")
    colours = {"allow": "green", "needs_approval": "yellow", "deny": "red"}
    for e in entries:
        v = str(e.verdict)
        table.add_row(
            e.id,
            str(e.decision.action),
            escape(e.decision.target),
            f"[{colours[v]}]{v}[/]",
            str(e.state),
            format_duration(e.decision.ttl),
            escape(e.decision.incident),
            escape("\n".join(e.reasons)),
        )
    counts = {v: sum(str(e.verdict) == v for e in entries) for v in colours}
    table.caption = (
        f"{counts['allow']} allowed, {counts['needs_approval']} awaiting a person's approval, "
        f"{counts['deny']} denied by the guard"
    )
    out.print(table)


@app.command()
def plan(
    report: Annotated[Path, typer.Argument(help="A patrol's report.json.")],
    policy: Annotated[Path, typer.Option("--policy", help="The guard's policy file (YAML).")],
    profiles: Annotated[
        Path | None, typer.Option("--profiles", help="Profiles file (default: the shipped one).")
    ] = None,
    fmt: FormatOpt = Format.table,
    db: DbOpt = None,
) -> None:
    """Propose decisions for a report's incidents, judge them by the policy, store them."""
    with _door():
        entries = _ledger(db, policy, profiles).plan(report)
    _show(entries, fmt, f"{len(entries)} decision(s) for {report}")


@app.command()
def approve(
    ident: Annotated[str, typer.Argument(metavar="ID", help="A pending decision's id.")],
    by: ByOpt = "operator",
    policy: PolicyOpt = None,
    fmt: FormatOpt = Format.table,
    db: DbOpt = None,
) -> None:
    """Enforce a pending decision; refused if the policy (--policy, else the file that judged
    it) now denies it."""
    with _door():
        entry = _ledger(db, policy).approve(ident, by=by)
    _show([entry], fmt, "approved")


@app.command()
def reject(
    ident: Annotated[str, typer.Argument(metavar="ID", help="A pending decision's id.")],
    by: ByOpt = "operator",
    fmt: FormatOpt = Format.table,
    db: DbOpt = None,
) -> None:
    """Close a pending decision without enforcing it."""
    with _door():
        entry = _ledger(db).reject(ident, by=by)
    _show([entry], fmt, "rejected")


@app.command("list")
def list_(
    state: Annotated[State | None, typer.Option("--state", help="Only this state.")] = None,
    fmt: FormatOpt = Format.table,
    db: DbOpt = None,
) -> None:
    """Decisions in the state database, oldest first."""
    with _door():
        entries = _ledger(db).list(state)
    _show(entries, fmt, f"{len(entries)} decision(s)")


@app.command()
def expire(fmt: FormatOpt = Format.table, db: DbOpt = None) -> None:
    """Mark enforced decisions whose TTL has run out as expired."""
    with _door():
        ledger = _ledger(db)
        gone = ledger.expire()
        entries = [ledger.get(d.id) for d in gone]
    _show(entries, fmt, f"{len(entries)} decision(s) expired")


@audit_app.command("verify")
def audit_verify(
    expect: Annotated[
        str | None,
        typer.Option("--expect", help="The head hash recorded earlier (catches a rewritten log)."),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Check the audit log's hash chain; exit 1 at the first edit, deletion or reordering."""
    with _door():
        result = _ledger(db).verify_audit(expect)
    if not result.ok:
        err.print(
            f"[red]audit log broken:[/] {escape(str(result.problem))}", markup=True, highlight=False
        )
        raise typer.Exit(1)
    out.print(f"audit log intact: {result.entries} entries, head {result.head}", highlight=False)


@audit_app.command("show")
def audit_show(
    decision: Annotated[
        str | None, typer.Option("--decision", help="Only this decision's entries.")
    ] = None,
    db: DbOpt = None,
) -> None:
    """The audit log as JSON lines (seq, at, event, decision, body, prev, hash)."""
    with _door():
        entries = _ledger(db).audit_entries(decision)
    for e in entries:
        typer.echo(json.dumps({"seq": e.seq, "body": e.body, "prev": e.prev, "hash": e.hash}))
