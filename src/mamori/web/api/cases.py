"""Cases and their evidence: list, read, open from a run's incidents, note, close; build a signed
evidence package and download its zip. The same functions as ``mamori case`` / ``mamori evidence``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from mamori.cases import case as cases
from mamori.cases.evidence import EvidenceError, build
from mamori.web.api.deps import PROTECTED, Analyst, fail, run_or_404, runs, store

router = APIRouter(prefix="/api/cases", tags=["cases"], responses=PROTECTED)


class OpenCase(BaseModel):
    incidents: list[str] = Field(min_length=1, max_length=1000)
    run: str | None = Field(None, description="The run they come from (default: the first's).")
    title: str | None = Field(None, min_length=1, max_length=500)


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=20000)


class CloseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


def case_json(c: cases.Case) -> dict[str, Any]:
    return dataclasses.asdict(c)


def _package_json(n: int, p: cases.Package) -> dict[str, Any]:
    return {
        "n": n,
        "built_at": p.built_at,
        "built_by": p.built_by,
        "manifest_sha256": p.manifest_sha256,
        "key_fingerprint": p.key_fingerprint,
        "zip_url": f"/api/cases/{{case}}/evidence/{n}.zip" if p.zip_path else None,
    }


@router.get("")
def list_cases(
    request: Request, user: Analyst, status: Literal["open", "closed"] | None = None
) -> list[dict[str, Any]]:
    """Cases (without their incidents' bodies), newest first as the store lists them."""
    found = cases.list_cases(store(request), cases.Status(status) if status else None)
    return [
        {
            "id": c.id,
            "title": c.title,
            "status": c.status,
            "owner": c.owner,
            "opened_at": c.opened_at,
            "closed_at": c.closed_at,
            "incidents": c.incident_ids,
        }
        for c in found
    ]


@router.post("", status_code=201, responses={400: {}, 404: {}})
def open_case(body: OpenCase, request: Request, user: Analyst) -> dict[str, Any]:
    """Open a case from incidents of one run's report (the run's lake feeds its evidence)."""
    if body.run is not None:
        run = run_or_404(request, body.run)
    else:
        found = runs(request).incident(body.incidents[0])
        if found is None:
            raise HTTPException(404, f"no incident {body.incidents[0]!r}")
        run = found[0]
    try:
        c = cases.open_case(
            store(request),
            run.report_path,
            body.incidents,
            owner=user.name,
            title=body.title,
            lake=run.folder / "lake",
            actor=user.name,
        )
    except cases.CaseError as exc:
        fail(exc)
    return case_json(c)


@router.get("/{case_id}", responses={404: {}})
def get_case(case_id: str, request: Request, user: Analyst) -> dict[str, Any]:
    """A case with its incidents, notes, decisions, custody log (and whether it verifies)."""
    s = store(request)
    try:
        c = cases.get_case(s, case_id)
        events = cases.case_events(s, case_id)
    except cases.CaseError as exc:
        fail(exc)
    return case_json(c) | {
        "custody": [dataclasses.asdict(e) for e in events],
        "custody_ok": cases.verify_events(events) is None,
    }


@router.post("/{case_id}/notes", status_code=201, responses={400: {}, 404: {}})
def add_note(case_id: str, body: NoteIn, request: Request, user: Analyst) -> dict[str, Any]:
    try:
        return dataclasses.asdict(
            cases.add_note(store(request), case_id, body.text, author=user.name)
        )
    except cases.CaseError as exc:
        fail(exc)


@router.post("/{case_id}/close", responses={400: {}, 404: {}})
def close_case(case_id: str, body: CloseIn, request: Request, user: Analyst) -> dict[str, Any]:
    try:
        return case_json(cases.close_case(store(request), case_id, body.reason, actor=user.name))
    except cases.CaseError as exc:
        fail(exc)


@router.get("/{case_id}/evidence", responses={404: {}})
def list_evidence(case_id: str, request: Request, user: Analyst) -> list[dict[str, Any]]:
    """The evidence packages built for a case, oldest first (``n`` numbers them)."""
    try:
        packages = cases.list_packages(store(request), case_id)
    except cases.CaseError as exc:
        fail(exc)
    return [_fix(_package_json(n, p), case_id) for n, p in enumerate(packages)]


def _fix(data: dict[str, Any], case_id: str) -> dict[str, Any]:
    if data["zip_url"]:
        data["zip_url"] = data["zip_url"].replace("{case}", case_id)
    return data


@router.post("/{case_id}/evidence", status_code=201, responses={400: {}, 404: {}})
def build_evidence(case_id: str, request: Request, user: Analyst) -> dict[str, Any]:
    """Build, sign and zip the case's evidence package (records, capture cuts, custody)."""
    s = store(request)
    try:
        cases.get_case(s, case_id)
    except cases.CaseError as exc:
        fail(exc)
    cfg = request.app.state.console
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    out = Path(cfg.runs_dir).parent / "evidence" / case_id / stamp
    try:
        built = build(s, case_id, out, key_path=cfg.key, actor=user.name)
    except EvidenceError as exc:
        raise HTTPException(400, str(exc)) from None
    n = len(cases.list_packages(s, case_id)) - 1
    return {
        "n": n,
        "manifest_sha256": built.manifest_sha256,
        "key_fingerprint": built.key_fingerprint,
        "files": built.files,
        "packets": built.packets,
        "connections": built.connections,
        "missing": built.missing,
        "zip_url": f"/api/cases/{case_id}/evidence/{n}.zip",
    }


@router.get(
    "/{case_id}/evidence/{n}.zip",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}, 404: {}, 410: {}},
)
def download_evidence(case_id: str, n: int, request: Request, user: Analyst) -> FileResponse:
    """One evidence package as its signed zip."""
    try:
        packages = cases.list_packages(store(request), case_id)
    except cases.CaseError as exc:
        fail(exc)
    if not 0 <= n < len(packages) or not packages[n].zip_path:
        raise HTTPException(404, f"case {case_id} has no package {n}")
    path = Path(packages[n].zip_path)  # type: ignore[arg-type]
    if not path.is_file():
        raise HTTPException(410, f"{path.name} is no longer on this server")
    return FileResponse(path, media_type="application/zip", filename=f"{case_id}-evidence-{n}.zip")
