"""Commands of the cases stage (mounted by mamori.cli): thin doors over mamori.cases.*.

Expected failures (no such case, a bad report, a tampered package) are printed as one line and
end with exit code 1 (or 2 for bad usage); no traceback reaches the operator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from mamori.store import Store

app = typer.Typer(no_args_is_help=True)
evidence_app = typer.Typer(no_args_is_help=True)
keys_app = typer.Typer(no_args_is_help=True)
report_app = typer.Typer(no_args_is_help=True)

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error[/]: {message}", markup=True, highlight=False)
    return typer.Exit(code)


def _store() -> Store:
    # Imported here so `mamori --help` does not load SQLAlchemy.
    from mamori.store import Store

    return Store()


# ---------------------------------------------------------------------------------------- case


@app.command("open")
def case_open(
    report: Annotated[Path, typer.Argument(help="A patrol's report.json.")],
    incident: Annotated[
        list[str] | None,
        typer.Option("--incident", "-i", help="Incident id to take in (repeat; default: all)."),
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Who owns the case (default: you).")] = None,
    title: Annotated[
        str | None, typer.Option(help="Title (default: the first incident's).")
    ] = None,
    lake: Annotated[
        Path | None, typer.Option(help="The patrol's lake (default: REPORT_DIR/lake).")
    ] = None,
) -> None:
    """Open a case from incidents of a patrol report; prints the new case's id."""
    from mamori.cases.case import CaseError, open_case

    try:
        case = open_case(_store(), report, incident, owner=owner, title=title, lake=lake)
    except CaseError as exc:
        raise _fail(str(exc)) from None
    if case.lake_path is None:
        err.print(f"[yellow]warning[/]: no lake found for {report}; evidence will lack records")
    print(case.id)


@app.command("list")
def case_list(
    status: Annotated[str | None, typer.Option(help="Only cases in this status.")] = None,
) -> None:
    """Every case, newest first."""
    from mamori.cases.case import Status, list_cases

    try:
        wanted = Status(status) if status else None
    except ValueError:
        raise _fail(f"--status must be one of {', '.join(s.value for s in Status)}", 2) from None
    table = Table("case", "status", "owner", "opened", "incidents", "title")
    for c in list_cases(_store(), wanted):
        table.add_row(
            c.id,
            c.status.value,
            c.owner,
            c.opened_at.strftime("%Y-%m-%d %H:%M"),
            str(len(c.incidents)),
            c.title,
        )
    out.print(table)


@app.command("show")
def case_show(
    case_id: Annotated[str, typer.Argument(help="Case id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A case: its incidents, notes, linked decisions, evidence packages and custody log."""
    from mamori.cases.case import CaseError, case_events, get_case, list_packages, verify_events

    store = _store()
    try:
        case = get_case(store, case_id)
        events = case_events(store, case_id)
        packages = list_packages(store, case_id)
    except CaseError as exc:
        raise _fail(str(exc)) from None
    broken = verify_events(events)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "id": case.id,
                    "title": case.title,
                    "status": case.status.value,
                    "owner": case.owner,
                    "opened_at": case.opened_at.isoformat(),
                    "closed_at": case.closed_at.isoformat() if case.closed_at else None,
                    "close_reason": case.close_reason,
                    "report": {"path": case.report_path, "sha256": case.report_sha256},
                    "lake": case.lake_path,
                    "captures": case.captures,
                    "incidents": case.incidents,
                    "notes": [
                        {"at": n.at.isoformat(), "author": n.author, "text": n.text}
                        for n in case.notes
                    ],
                    "decisions": [
                        {"id": d.decision_id, "at": d.linked_at.isoformat(), "by": d.linked_by}
                        for d in case.decisions
                    ],
                    "packages": [
                        {"path": p.path, "zip": p.zip_path, "manifest_sha256": p.manifest_sha256}
                        for p in packages
                    ],
                    "custody": [e.body | {"hash": e.hash} for e in events],
                    "custody_intact": broken is None,
                }
            )
        )
        return
    out.print(f"[bold]{case.id}[/] {case.title}", highlight=False)
    out.print(
        f"status {case.status.value}, owner {case.owner}, opened {case.opened_at:%Y-%m-%d %H:%M}"
        + (
            f", closed {case.closed_at:%Y-%m-%d %H:%M}: {case.close_reason}"
            if case.closed_at
            else ""
        ),
        highlight=False,
    )
    out.print(f"report {case.report_path} (sha256 {case.report_sha256})", highlight=False)
    incidents = Table(
        "incident", "severity", "techniques", "first seen", "title", title="incidents"
    )
    for inc in case.incidents:
        incidents.add_row(
            inc["id"],
            str(inc.get("severity", "")),
            ", ".join(inc.get("techniques", [])),
            str(inc.get("first_seen", "")),
            str(inc.get("title", "")),
        )
    out.print(incidents)
    for n in case.notes:
        out.print(f"note {n.at:%Y-%m-%d %H:%M} {n.author}: {n.text}", highlight=False)
    for d in case.decisions:
        out.print(f"decision {d.decision_id} (linked by {d.linked_by})", highlight=False)
    for p in packages:
        out.print(f"evidence {p.path} (manifest sha256 {p.manifest_sha256})", highlight=False)
    out.print(
        f"custody log: {len(events)} entries, "
        + ("intact" if broken is None else f"[red]BROKEN[/]: {broken.reason}")
    )


@app.command("note")
def case_note(
    case_id: Annotated[str, typer.Argument(help="Case id.")],
    text: Annotated[str, typer.Argument(help="The note.")],
) -> None:
    """Add a note to a case (it also enters the custody log)."""
    from mamori.cases.case import CaseError, add_note

    try:
        add_note(_store(), case_id, text)
    except CaseError as exc:
        raise _fail(str(exc)) from None


@app.command("assign")
def case_assign(
    case_id: Annotated[str, typer.Argument(help="Case id.")],
    owner: Annotated[str, typer.Argument(help="The new owner.")],
) -> None:
    """Give a case to someone."""
    from mamori.cases.case import CaseError, assign

    try:
        assign(_store(), case_id, owner)
    except CaseError as exc:
        raise _fail(str(exc)) from None


@app.command("link")
def case_link(
    case_id: Annotated[str, typer.Argument(help="Case id.")],
    decision_id: Annotated[str, typer.Argument(help="Id of a respond decision.")],
) -> None:
    """Link a response decision to a case."""
    from mamori.cases.case import CaseError, link_decision

    try:
        link_decision(_store(), case_id, decision_id)
    except CaseError as exc:
        raise _fail(str(exc)) from None


@app.command("close")
def case_close(
    case_id: Annotated[str, typer.Argument(help="Case id.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why it is closed.")],
) -> None:
    """Close a case (it stays readable; its evidence is kept)."""
    from mamori.cases.case import CaseError, close_case

    try:
        close_case(_store(), case_id, reason)
    except CaseError as exc:
        raise _fail(str(exc)) from None
