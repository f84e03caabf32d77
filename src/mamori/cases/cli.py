"""Commands of the cases stage (mounted by mamori.cli): thin doors over mamori.cases.*.

Expected failures (no such case, a bad report, a tampered package) are printed as one line and
end with exit code 1 (or 2 for bad usage); no traceback reaches the operator.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import polars as pl

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
                case.record()
                | {
                    "incidents": case.incidents,
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


# -------------------------------------------------------------------------------------- report


def _report_command(kind: str, about: str) -> None:
    """Register ``mamori report KIND CASE --format html|pdf -o FILE`` for one report kind."""

    def command(
        case: Annotated[
            str, typer.Argument(help="Case id, or a patrol's report.json (all its incidents).")
        ],
        output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
        fmt: Annotated[str, typer.Option("--format", "-f", help="html or pdf.")] = "pdf",
        operator_file: Annotated[
            Path | None,
            typer.Option(
                "--operator",
                help="Operator profile, YAML or TOML (required for the regulator report).",
            ),
        ] = None,
        intel: Annotated[
            Path | None,
            typer.Option(help="Intel store to read locations from (default: the usual one)."),
        ] = None,
    ) -> None:
        from mamori.cases.reports import FORMATS, ReportError, load_operator, write_report
        from mamori.cases.reports.view import from_report, from_store

        if fmt not in FORMATS:
            raise _fail(f"--format must be one of {', '.join(FORMATS)}", 2)
        if kind == "regulator" and operator_file is None:
            raise _fail("the regulator report needs --operator FILE (the operator profile)", 2)
        try:
            operator = load_operator(operator_file) if operator_file else None
            path = Path(case)
            view = from_report(path) if path.suffix == ".json" else from_store(_store(), case)
            write_report(kind, view, fmt, output, operator=operator, indicators=_intel_store(intel))
        except ReportError as exc:
            raise _fail(str(exc)) from None
        except OSError as exc:
            raise _fail(f"{output}: cannot write the report ({exc})") from None
        out.print(f"{output}", highlight=False)

    command.__doc__ = about
    report_app.command(kind, help=about)(command)


def _intel_store(path: Path | None) -> pl.DataFrame | None:
    """The intel store's indicators, for the locations its sources give (None when empty)."""
    from mamori.intel.schema import default_store
    from mamori.intel.store import read

    folder = path or default_store()
    if not folder.is_dir():
        if path is not None:
            raise _fail(f"{path}: no intel store there", 2)
        return None
    try:
        return read(folder)
    except (OSError, ValueError) as exc:  # pyarrow's errors are ValueErrors
        raise _fail(f"{folder}: cannot read the intel store ({exc})") from None


for _kind, _about in (
    ("technical", "Technical incident report: timeline, entities, techniques, decisions."),
    ("referral", "Criminal referral: facts, timeline, evidence index with hashes."),
    ("attribution", "Attribution statement draft: only what the assessment supports."),
    ("regulator", "Incident report to the regulator (needs --operator FILE)."),
):
    _report_command(_kind, _about)


@report_app.command("assessment")
def report_assessment(
    case: Annotated[str, typer.Argument(help="Case id, or a patrol's report.json.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    intel: Annotated[
        Path | None, typer.Option(help="Intel store to read locations from (default: usual).")
    ] = None,
) -> None:
    """The case's attribution assessment as JSON: hypotheses, evidence for and against, scale."""
    from mamori.cases.attribution import assess
    from mamori.cases.reports import ReportError
    from mamori.cases.reports.view import from_report, from_store

    try:
        path = Path(case)
        view = from_report(path) if path.suffix == ".json" else from_store(_store(), case)
    except ReportError as exc:
        raise _fail(str(exc)) from None
    text = json.dumps(assess(view.id, view.incidents, _intel_store(intel)).to_json(), indent=2)
    if output is None:
        print(text)
        return
    try:
        output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise _fail(f"{output}: cannot write the assessment ({exc})") from None


# ---------------------------------------------------------------------------------------- keys


@keys_app.command("generate")
def keys_generate(
    path: Annotated[
        Path | None, typer.Option("--path", help="Private key file (default: the data home).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing key.")] = False,
) -> None:
    """Make the operator's Ed25519 signing key (encrypted if MAMORI_KEY_PASSPHRASE is set)."""
    from mamori.cases import keys

    try:
        made = keys.generate(path, force=force)
    except (keys.KeyStoreError, OSError) as exc:
        raise _fail(str(exc)) from None
    out.print(
        f"private key {made.private_path} (mode 0600{', encrypted' if made.encrypted else ''})"
    )
    out.print(f"public key  {made.public_path}")
    out.print(f"fingerprint {made.fingerprint}", highlight=False)


@keys_app.command("show")
def keys_show(
    path: Annotated[Path | None, typer.Option("--path", help="Private key file.")] = None,
) -> None:
    """Where the signing key is and its fingerprint (what others compare)."""
    from mamori.cases import keys

    try:
        got = keys.info(path)
    except keys.KeyStoreError as exc:
        raise _fail(str(exc)) from None
    out.print(f"private key {got.private_path}{' (encrypted)' if got.encrypted else ''}")
    out.print(f"fingerprint {got.fingerprint}", highlight=False)


@keys_app.command("export-public")
def keys_export_public(
    path: Annotated[Path | None, typer.Option("--path", help="Private key file.")] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here (default stdout).")
    ] = None,
) -> None:
    """The public key (PEM), to hand to whoever checks your evidence."""
    from mamori.cases import keys

    try:
        pem = keys.public_pem(keys.load_private(path).public_key())
    except keys.KeyStoreError as exc:
        raise _fail(str(exc)) from None
    if output is None:
        print(pem.decode(), end="")
    else:
        output.write_bytes(pem)


# ------------------------------------------------------------------------------------ evidence


@evidence_app.command("build")
def evidence_build(
    case_id: Annotated[str, typer.Argument(help="Case id.")],
    out_dir: Annotated[Path, typer.Option("--out", help="New folder for the package.")],
    key: Annotated[Path | None, typer.Option("--key", help="Private signing key.")] = None,
    intel: Annotated[Path | None, typer.Option("--intel", help="Intel store folder.")] = None,
    config: Annotated[Path | None, typer.Option(help="Settings file (TOML).")] = None,
) -> None:
    """Cut the case's packets, add records and intel, write manifest and custody log, sign, zip."""
    from mamori.cases.evidence import EvidenceError, build
    from mamori.config import load_settings

    try:
        built = build(
            _store(),
            case_id,
            out_dir,
            key_path=key,
            intel_store=intel,
            settings=load_settings(config),
        )
    except EvidenceError as exc:
        raise _fail(str(exc)) from None
    for uid in built.missing:
        err.print(f"[yellow]warning[/]: connection {uid} is not in the lake; no packets for it")
    table = Table(title=f"evidence package of {built.case_id}")
    table.add_column("item")
    table.add_column("value", overflow="fold")
    table.add_row("folder", str(built.folder))
    table.add_row("zip", str(built.zip_path))
    table.add_row("files", str(built.files))
    table.add_row("connections", str(built.connections))
    table.add_row("packets", f"{built.packets:,}")
    table.add_row("manifest sha256", built.manifest_sha256)
    table.add_row("signed by key", built.key_fingerprint)
    err.print(table)


@evidence_app.command("verify")
def evidence_verify(
    package: Annotated[Path, typer.Argument(help="Package folder or its zip.")],
    key: Annotated[
        Path | None, typer.Option("--key", help="The signer's public key (PEM) to require.")
    ] = None,
    fingerprint: Annotated[
        str | None, typer.Option("--fingerprint", help="The signer's key fingerprint to require.")
    ] = None,
) -> None:
    """Check the signature, every file's SHA-256 and the custody chain; name what failed."""
    from mamori.cases.verify import verify

    verdict = verify(package, public_key=key, fingerprint=fingerprint)
    for p in verdict.problems:
        out.print(f"[red]FAILED[/] {p.what}: {p}", highlight=False)
    if not verdict.ok:
        raise typer.Exit(1)
    out.print(
        f"[green]OK[/] {verdict.package}: case {verdict.case}, {verdict.files} files match the "
        f"manifest, signature by key {verdict.key_fingerprint}, custody log of "
        f"{verdict.custody_entries} entries intact",
        highlight=False,
    )
    for body in verdict.after_seal:
        out.print(
            f"  after sealing: {body.get('action')} by {body.get('actor')} at {body.get('at')}",
            highlight=False,
        )


@evidence_app.command("log")
def evidence_log(
    package: Annotated[Path, typer.Argument(help="Package folder or its zip.")],
    action: Annotated[str, typer.Argument(help="transfer, receive, verify, copy, store or note.")],
    to: Annotated[str | None, typer.Option("--to", help="Who it was handed to.")] = None,
    source: Annotated[str | None, typer.Option("--from", help="Who it came from.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Free text.")] = None,
) -> None:
    """Add who-did-what-when to a sealed package's custody log (and the case's, if kept here)."""
    from mamori.cases.case import CaseError, record_event
    from mamori.cases.custody import Action, CustodyError, append

    try:
        chosen = Action(action)
    except ValueError:
        raise _fail(f"ACTION must be one of {', '.join(a.value for a in Action)}", 2) from None
    detail = {k: v for k, v in (("to", to), ("from", source), ("note", note)) if v}
    try:
        body = append(package, chosen, detail)
    except CustodyError as exc:
        raise _fail(str(exc)) from None
    if body.get("case"):
        # The case's own history learns of it too when the case lives in this store.
        with contextlib.suppress(CaseError):
            record_event(_store(), body["case"], body["action"], detail | {"package": str(package)})
    out.print(f"{body['action']} by {body['actor']} at {body['at']}", highlight=False)
