"""``mamori share export CASE|REPORT.json``: find what to export, build it, refuse invalid output.

A thin layer between the CLI door and the exporters (:mod:`mamori.share.stix`,
:mod:`mamori.share.misp`): it resolves the subject (a patrol report file, or a case from the
state database), and it never writes a STIX bundle the OASIS validator rejects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mamori.share import misp, stix
from mamori.share.stix import Container, ExportError, ExportOptions

FORMATS = ("stix", "misp")


@dataclass(frozen=True)
class Subject:
    """What is exported: incidents, and the case they belong to, if any."""

    incidents: list[Mapping[str, Any]]
    key: str  # stable: the case id or the report's incident ids
    info: str
    container: Container | None = None


def _report(path: Path) -> Subject:
    from mamori.cases.case import CaseError, load_report

    try:
        data = load_report(path)
    except CaseError as exc:
        raise ExportError(str(exc)) from None
    incidents = list(data["incidents"])
    ids = ",".join(sorted(str(i["id"]) for i in incidents))
    info = f"mamori patrol {path.name}: {len(incidents)} incident(s)"
    if incidents:
        info += f", worst: {incidents[0].get('title', '')}"
    return Subject(incidents, "report|" + ids, info)


def _case(case_id: str, store: Any = None) -> Subject:
    from mamori.cases.case import CaseError, get_case
    from mamori.store import Store

    try:
        case = get_case(store or Store(), case_id)
    except CaseError as exc:
        raise ExportError(str(exc)) from None
    container = Container(
        key=case.id,
        name=case.title,
        published=case.opened_at.isoformat(),
        description=f"mamori case {case.id}: {len(case.incidents)} incident(s)",
    )
    return Subject(list(case.incidents), "case|" + case.id, f"{case.id}: {case.title}", container)


def resolve(subject: str, store: Any = None) -> Subject:
    """A path to a report.json (or the folder holding one), else a case id."""
    path = Path(subject)
    if path.is_dir() and (path / "report.json").is_file():
        path = path / "report.json"
    if path.is_file():
        return _report(path)
    if subject.upper().startswith("CASE-"):
        return _case(subject, store)
    raise ExportError(f"{subject}: neither a patrol report file nor a case id (CASE-...)")


def build(subject: Subject, fmt: str, options: ExportOptions) -> str:
    """The export as text; a STIX bundle only after the OASIS validator found no error."""
    if not subject.incidents:
        raise ExportError(f"{subject.info}: no incidents to export")
    if fmt == "stix":
        bundle = stix.incidents_bundle(subject.incidents, options, subject.container)
        errors = stix.validate(bundle)
        if errors:
            shown = "; ".join(errors[:5])
            raise ExportError(f"the bundle fails the STIX 2.1 validator ({len(errors)}): {shown}")
        return stix.dumps(bundle)
    if fmt == "misp":
        return misp.dumps(misp.event(subject.incidents, subject.info, subject.key, options))
    raise ExportError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
