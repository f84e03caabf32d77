"""What a report is rendered from: one plain, read-only view of a case.

Why a view rather than the case store itself: templates should see plain data (strings, lists,
dicts) whose every field says where it came from, and tests should be able to render a report from
a patrol's report.json without a database. ``from_store`` builds the view from a stored case (the
incidents it copied, its notes, its linked decisions and its latest evidence package);
``from_report`` builds one straight from a report.json.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa


class ReportError(Exception):
    """A report cannot be made; the message names the case or file and why."""


@dataclass(frozen=True)
class CaseView:
    id: str
    title: str
    status: str
    owner: str
    opened: str  # ISO 8601, UTC
    closed: str | None
    close_reason: str | None
    incidents: list[dict[str, Any]]  # report.json incident objects (docs/report.md)
    report_path: str | None = None  # the patrol report the case was opened from
    report_sha256: str | None = None
    report_generated: str | None = None  # when that patrol ran: the detection time
    captures: list[str] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)  # at, author, text
    # Linked respond decisions: at least ``id``; action, target, state, reason... when the respond
    # stage's table has them.
    decisions: list[dict[str, Any]] = field(default_factory=list)
    # The latest evidence package: its manifest (as mamori.cases.evidence wrote it), where it is,
    # the manifest's SHA-256 and the signing key's fingerprint.
    evidence: dict[str, Any] | None = None
    evidence_path: str | None = None
    evidence_manifest_sha256: str | None = None
    evidence_key: str | None = None
    custody_entries: int | None = None
    custody_intact: bool | None = None


def from_report(
    path: Path, incident_ids: Sequence[str] | None = None, case_id: str | None = None
) -> CaseView:
    """A view of a would-be case straight from a patrol report (all incidents unless named)."""
    from mamori.cases.case import CaseError, load_report, sha256_file

    try:
        data = load_report(path)
    except CaseError as exc:
        raise ReportError(str(exc)) from None
    chosen = [i for i in data["incidents"] if not incident_ids or i["id"] in incident_ids]
    if not chosen:
        raise ReportError(f"{path}: no incident to report on")
    return CaseView(
        id=case_id or chosen[0]["id"],
        title=str(chosen[0].get("title", chosen[0]["id"])),
        status="open",
        owner="",
        opened=str(data.get("generated", "")),
        closed=None,
        close_reason=None,
        incidents=chosen,
        report_path=str(path.resolve()),
        report_sha256=sha256_file(path),
        report_generated=data.get("generated"),
        captures=[str(i["path"]) for i in data.get("inputs", []) if i.get("path")],
    )


def from_store(store: Any, case_id: str) -> CaseView:
    """The view of a stored case (mamori.cases.case), with its latest evidence package."""
    from mamori.cases.case import CaseError, case_events, get_case, list_packages, verify_events

    try:
        case = get_case(store, case_id)
        packages = list_packages(store, case_id)
        events = case_events(store, case_id)
    except CaseError as exc:
        raise ReportError(str(exc)) from None
    generated = None
    with contextlib.suppress(OSError, ValueError):  # the report may be gone; the case keeps it all
        generated = json.loads(Path(case.report_path).read_bytes()).get("generated")
    latest = packages[-1] if packages else None
    return CaseView(
        id=case.id,
        title=case.title,
        status=case.status.value,
        owner=case.owner,
        opened=case.opened_at.isoformat(),
        closed=case.closed_at.isoformat() if case.closed_at else None,
        close_reason=case.close_reason,
        incidents=case.incidents,
        report_path=case.report_path,
        report_sha256=case.report_sha256,
        report_generated=generated,
        captures=case.captures,
        notes=[{"at": n.at.isoformat(), "author": n.author, "text": n.text} for n in case.notes],
        decisions=_decisions(store, [d.decision_id for d in case.decisions])
        or [
            {"id": d.decision_id, "linked_at": d.linked_at.isoformat(), "linked_by": d.linked_by}
            for d in case.decisions
        ],
        evidence=latest.manifest if latest else None,
        evidence_path=latest.path if latest else None,
        evidence_manifest_sha256=latest.manifest_sha256 if latest else None,
        evidence_key=latest.key_fingerprint if latest else None,
        custody_entries=len(events),
        custody_intact=verify_events(events) is None,
    )


def _decisions(store: Any, ids: list[str]) -> list[dict[str, Any]]:
    """The respond stage's rows for these decision ids (its ``respond_decisions`` table)."""
    from mamori.store.db import metadata

    table = metadata.tables.get("respond_decisions")
    if not ids or table is None or "id" not in table.c:
        return []
    with store.begin() as conn:
        rows = conn.execute(sa.select(table).where(table.c.id.in_(ids))).mappings()
        found = {str(r["id"]): {k: _plain(v) for k, v in r.items()} for r in rows}
    return [found.get(i, {"id": i}) for i in ids]


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
