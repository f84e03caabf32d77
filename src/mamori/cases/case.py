"""Cases: incidents of a patrol taken into an investigation, with owner, notes and decisions.

A case copies what it was opened from (the chosen incidents as report.json wrote them, the
report's path and SHA-256, the captures the patrol read), because a case may end in court months
later, when the report has been regenerated or deleted. Everything done to a case is appended to
its hash-chained event log; that log is the first part of the chain of custody an evidence
package exports (mamori.cases.custody).

This module is the API other doors and stages use (CLI, web console, reports):
``open_case``, ``get_case``, ``list_cases``, ``add_note``, ``assign``, ``close_case``,
``link_decision``, ``case_events``, ``record_event``, ``list_packages``.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from mamori import __version__
from mamori.cases.tables import case_decisions, case_incidents, case_notes, cases, evidence_packages
from mamori.cases.tables import case_events as events_table
from mamori.hashchain import GENESIS, Break, canonical, link, verify
from mamori.store import Store

REPORT_SCHEMA = "mamori.patrol.report/1"


class CaseError(Exception):
    """A case could not be opened, found or changed; the message names the case or file and why."""


class Status(StrEnum):
    open = "open"
    closed = "closed"


@dataclass(frozen=True)
class Note:
    at: datetime
    author: str
    text: str


@dataclass(frozen=True)
class DecisionLink:
    decision_id: str
    linked_at: datetime
    linked_by: str


@dataclass(frozen=True)
class Event:
    """One entry of a case's custody chain: ``body`` is what was hashed (at, actor, action, detail)."""

    seq: int
    body: dict[str, Any]
    prev: str
    hash: str

    @property
    def at(self) -> str:
        return str(self.body["at"])

    @property
    def actor(self) -> str:
        return str(self.body["actor"])

    @property
    def action(self) -> str:
        return str(self.body["action"])


@dataclass(frozen=True)
class Package:
    """An evidence package built for a case (see mamori.cases.evidence)."""

    path: str
    zip_path: str | None
    built_at: datetime
    built_by: str
    manifest_sha256: str
    key_fingerprint: str
    manifest: dict[str, Any]


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    status: Status
    owner: str
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    report_path: str
    report_sha256: str
    lake_path: str | None
    inputs: list[dict[str, Any]]
    mamori_version: str
    incidents: list[dict[str, Any]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    decisions: list[DecisionLink] = field(default_factory=list)

    @property
    def incident_ids(self) -> list[str]:
        return [str(i["id"]) for i in self.incidents]

    @property
    def captures(self) -> list[str]:
        """The capture files the patrol read (report ``inputs[].path``)."""
        return [str(i["path"]) for i in self.inputs if i.get("path")]

    def record(self) -> dict[str, Any]:
        """The case's own fields as JSON values (the CLI and evidence packages add their views
        of incidents and decisions)."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "owner": self.owner,
            "opened_at": self.opened_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "close_reason": self.close_reason,
            "report": {"path": self.report_path, "sha256": self.report_sha256},
            "lake": self.lake_path,
            "captures": self.captures,
            "notes": [
                {"at": n.at.isoformat(), "author": n.author, "text": n.text} for n in self.notes
            ],
        }


def operator() -> str:
    """Who is acting: ``MAMORI_USER`` if set (a person's name for the custody log), else the
    login name and host, which is what an examiner can later tie to a person."""
    who = os.environ.get("MAMORI_USER")
    if who:
        return who
    try:
        user = getpass.getuser()
    except OSError:  # no login name (containers without a passwd entry)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def now() -> datetime:
    return datetime.now(UTC)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def load_report(path: Path) -> dict[str, Any]:
    """Read a patrol report.json, or raise CaseError naming the file and what is wrong."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise CaseError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise CaseError(f"{path}: not a readable JSON report ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA:
        raise CaseError(f"{path}: not a mamori patrol report (schema is not {REPORT_SCHEMA})")
    if not isinstance(data.get("incidents"), list):
        raise CaseError(f"{path}: report has no incidents[] list")
    for n, inc in enumerate(data["incidents"]):
        if not isinstance(inc, dict) or not isinstance(inc.get("id"), str):
            raise CaseError(f"{path}: incidents[{n}] has no id")
    return data


def open_case(
    store: Store,
    report: Path,
    incident_ids: Sequence[str] | None = None,
    *,
    owner: str | None = None,
    title: str | None = None,
    lake: Path | None = None,
    actor: str | None = None,
) -> Case:
    """Open a case from the chosen incidents of a patrol report (all of them when none is named).

    The lake defaults to the patrol's own ``REPORT_DIR/lake`` (where ``mamori patrol`` writes it
    unless told otherwise); evidence packages read the case's records from there.
    """
    report = report.resolve()
    data = load_report(report)
    by_id = {inc["id"]: inc for inc in data["incidents"]}
    if incident_ids:
        missing = [i for i in incident_ids if i not in by_id]
        if missing:
            raise CaseError(f"{report}: no incident {', '.join(missing)} in this report")
        chosen = [by_id[i] for i in dict.fromkeys(incident_ids)]
    else:
        chosen = list(data["incidents"])
    if not chosen:
        raise CaseError(f"{report}: the report has no incidents to open a case from")
    if lake is None:
        # The report names its lake (mamori patrol's --lake); older reports sat beside it.
        named = data.get("lake")
        lake = Path(named) if isinstance(named, str) and named else report.parent / "lake"
    lake_path = str(lake.resolve()) if lake.is_dir() else None
    actor = _text(str(report), "actor", actor or operator())
    owner = _text(str(report), "owner", owner or actor)
    if title is not None:
        _text(str(report), "title", title)
    if title is None:
        title = str(chosen[0].get("title") or chosen[0]["id"])
        if len(chosen) > 1:
            title += f" (+{len(chosen) - 1} more)"
    digest = sha256_file(report)
    inputs = [dict(i) for i in data.get("inputs", []) if isinstance(i, dict)]
    opened = now()
    case_id = "CASE-" + secrets.token_hex(5)
    with store.begin() as conn:
        conn.execute(
            cases.insert().values(
                id=case_id,
                title=title,
                status=Status.open.value,
                owner=owner,
                opened_at=opened,
                report_path=str(report),
                report_sha256=digest,
                lake_path=lake_path,
                inputs=inputs,
                mamori_version=__version__,
            )
        )
        conn.execute(
            case_incidents.insert(),
            [
                {"case_id": case_id, "incident_id": inc["id"], "position": n, "body": inc}
                for n, inc in enumerate(chosen)
            ],
        )
        _append(
            conn,
            case_id,
            actor,
            "case.open",
            {
                "report": str(report),
                "report_sha256": digest,
                "incidents": [inc["id"] for inc in chosen],
                "owner": owner,
                "lake": lake_path,
            },
            at=opened,
        )
    return get_case(store, case_id)


def get_case(store: Store, case_id: str) -> Case:
    with store.begin() as conn:
        row = conn.execute(sa.select(cases).where(cases.c.id == case_id)).mappings().first()
        if row is None:
            raise CaseError(f"no case {case_id}")
        incs = conn.execute(
            sa.select(case_incidents.c.body)
            .where(case_incidents.c.case_id == case_id)
            .order_by(case_incidents.c.position)
        ).scalars()
        notes = conn.execute(
            sa.select(case_notes).where(case_notes.c.case_id == case_id).order_by(case_notes.c.id)
        ).mappings()
        links = conn.execute(
            sa.select(case_decisions)
            .where(case_decisions.c.case_id == case_id)
            .order_by(case_decisions.c.linked_at, case_decisions.c.decision_id)
        ).mappings()
        return _case(
            row,
            incidents=[dict(b) for b in incs],
            notes=[Note(_utc(n["at"]), n["author"], n["text"]) for n in notes],
            decisions=[
                DecisionLink(d["decision_id"], _utc(d["linked_at"]), d["linked_by"]) for d in links
            ],
        )


def list_cases(store: Store, status: Status | None = None) -> list[Case]:
    """Every case, newest first, with its incidents (notes and decisions are left empty)."""
    query = sa.select(cases).order_by(cases.c.opened_at.desc(), cases.c.id)
    if status is not None:
        query = query.where(cases.c.status == status.value)
    with store.begin() as conn:
        rows = list(conn.execute(query).mappings())
        incs: dict[str, list[dict[str, Any]]] = {}
        for cid, body in conn.execute(
            sa.select(case_incidents.c.case_id, case_incidents.c.body).order_by(
                case_incidents.c.case_id, case_incidents.c.position
            )
        ):
            incs.setdefault(cid, []).append(dict(body))
    return [_case(r, incidents=incs.get(r["id"], [])) for r in rows]


def _text(case_id: str, what: str, value: str) -> str:
    """Text a person typed, as the database will keep it: NUL characters and lone surrogates
    (bytes a terminal could not decode) have no meaning in a note or a name, PostgreSQL cannot
    store them and the custody hash cannot cover them, so they are refused with a clear message."""
    if "\x00" in value:
        raise CaseError(f"{case_id}: the {what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: undecodable bytes from a terminal
        raise CaseError(
            f"{case_id}: the {what} is not valid text at character {exc.start}"
        ) from None
    return value


def add_note(store: Store, case_id: str, text: str, *, author: str | None = None) -> Note:
    text = _text(case_id, "note", text).strip()
    if not text:
        raise CaseError(f"{case_id}: a note needs text")
    author = _text(case_id, "author", author or operator())
    at = now()
    with store.begin() as conn:
        _require(conn, case_id)
        conn.execute(case_notes.insert().values(case_id=case_id, at=at, author=author, text=text))
        _append(conn, case_id, author, "case.note", {"text": text}, at=at)
    return Note(at, author, text)


def assign(store: Store, case_id: str, owner: str, *, actor: str | None = None) -> Case:
    if not _text(case_id, "owner", owner).strip():
        raise CaseError(f"{case_id}: an owner needs a name")
    with store.begin() as conn:
        _require(conn, case_id)
        conn.execute(cases.update().where(cases.c.id == case_id).values(owner=owner))
        _append(conn, case_id, actor or operator(), "case.assign", {"owner": owner})
    return get_case(store, case_id)


def close_case(store: Store, case_id: str, reason: str, *, actor: str | None = None) -> Case:
    """Close a case with a reason; a closed case keeps its evidence and can still be read."""
    if not _text(case_id, "reason", reason).strip():
        raise CaseError(f"{case_id}: closing a case needs a reason")
    at = now()
    with store.begin() as conn:
        row = _require(conn, case_id)
        if row["status"] == Status.closed.value:
            raise CaseError(f"{case_id}: already closed")
        conn.execute(
            cases.update()
            .where(cases.c.id == case_id)
            .values(status=Status.closed.value, closed_at=at, close_reason=reason)
        )
        _append(conn, case_id, actor or operator(), "case.close", {"reason": reason}, at=at)
    return get_case(store, case_id)


def link_decision(
    store: Store, case_id: str, decision_id: str, *, actor: str | None = None
) -> DecisionLink:
    """Record that a respond decision was taken for this case (idempotent)."""
    decision_id = _text(case_id, "decision id", decision_id)
    actor = _text(case_id, "actor", actor or operator())
    at = now()
    with store.begin() as conn:
        _require(conn, case_id)
        exists = (
            conn.execute(
                sa.select(case_decisions).where(
                    (case_decisions.c.case_id == case_id)
                    & (case_decisions.c.decision_id == decision_id)
                )
            )
            .mappings()
            .first()
        )
        if exists is not None:
            return DecisionLink(decision_id, _utc(exists["linked_at"]), exists["linked_by"])
        conn.execute(
            case_decisions.insert().values(
                case_id=case_id, decision_id=decision_id, linked_at=at, linked_by=actor
            )
        )
        _append(conn, case_id, actor, "case.link_decision", {"decision": decision_id}, at=at)
    return DecisionLink(decision_id, at, actor)


def case_events(store: Store, case_id: str) -> list[Event]:
    """The case's custody chain, in order."""
    with store.begin() as conn:
        _require(conn, case_id)
        rows = conn.execute(
            sa.select(events_table)
            .where(events_table.c.case_id == case_id)
            .order_by(events_table.c.seq)
        ).mappings()
        return [Event(r["seq"], json.loads(r["body"]), r["prev"], r["hash"]) for r in rows]


def verify_events(events: Sequence[Event]) -> Break | None:
    return verify((e.body, e.prev, e.hash) for e in events)


def record_event(
    store: Store,
    case_id: str,
    action: str,
    detail: Mapping[str, Any],
    *,
    actor: str | None = None,
    at: datetime | None = None,
) -> Event:
    """Append one entry to a case's custody chain (other steps of the stage call this)."""
    with store.begin() as conn:
        _require(conn, case_id)
        return _append(conn, case_id, actor or operator(), action, detail, at=at)


def list_packages(store: Store, case_id: str) -> list[Package]:
    """The evidence packages built for a case, oldest first, each with its manifest."""
    with store.begin() as conn:
        _require(conn, case_id)
        rows = conn.execute(
            sa.select(evidence_packages)
            .where(evidence_packages.c.case_id == case_id)
            .order_by(evidence_packages.c.id)
        ).mappings()
        return [
            Package(
                r["path"],
                r["zip_path"],
                _utc(r["built_at"]),
                r["built_by"],
                r["manifest_sha256"],
                r["key_fingerprint"],
                dict(r["manifest"]),
            )
            for r in rows
        ]


def _append(
    conn: Connection,
    case_id: str,
    actor: str,
    action: str,
    detail: Mapping[str, Any],
    *,
    at: datetime | None = None,
) -> Event:
    last = conn.execute(
        sa.select(events_table.c.seq, events_table.c.hash)
        .where(events_table.c.case_id == case_id)
        .order_by(events_table.c.seq.desc())
        .limit(1)
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (0, GENESIS)
    body = {
        "case": case_id,
        "at": (at or now()).isoformat(),
        "actor": actor,
        "action": action,
        "detail": dict(detail),
    }
    body = json.loads(canonical(body))  # exactly what is hashed and what is read back
    digest = link(prev, body)
    conn.execute(
        events_table.insert().values(
            case_id=case_id, seq=seq, body=canonical(body).decode(), prev=prev, hash=digest
        )
    )
    return Event(seq, body, prev, digest)


def _require(conn: Connection, case_id: str) -> sa.RowMapping:
    row = conn.execute(sa.select(cases).where(cases.c.id == case_id)).mappings().first()
    if row is None:
        raise CaseError(f"no case {case_id}")
    return row


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything this stage writes is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _case(row: sa.RowMapping, **parts: Any) -> Case:
    return Case(
        id=row["id"],
        title=row["title"],
        status=Status(row["status"]),
        owner=row["owner"],
        opened_at=_utc(row["opened_at"]),
        closed_at=_utc(row["closed_at"]) if row["closed_at"] else None,
        close_reason=row["close_reason"],
        report_path=row["report_path"],
        report_sha256=row["report_sha256"],
        lake_path=row["lake_path"],
        inputs=list(row["inputs"] or []),
        mamori_version=row["mamori_version"],
        **parts,
    )
