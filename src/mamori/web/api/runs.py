"""Patrol runs: start one over server-side captures or an uploaded one, follow it, read its report.

The runner is the console's (:class:`mamori.web.console.runs.Runs`, which calls ``mamori.patrol``
in a thread), so a run started here shows on the console and the other way round.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from pydantic import BaseModel, Field

from mamori.web.api.deps import PROTECTED, Analyst, run_or_404, runs
from mamori.web.console.runs import Run, RunError

router = APIRouter(prefix="/api/runs", tags=["runs"], responses=PROTECTED)

UPLOAD_MAX = int(os.environ.get("MAMORI_UPLOAD_MAX", str(4 << 30)))  # bytes
CHUNK = 1 << 20


class StartRun(BaseModel):
    captures: list[str] = Field(min_length=1, max_length=64, description="Paths on this server.")


def run_json(run: Run) -> dict[str, Any]:
    return {"id": run.id, **run.status}


@router.get("")
def list_runs(request: Request, user: Analyst) -> list[dict[str, Any]]:
    """Every run, newest first, with its state (running, done, failed) and counts."""
    return [run_json(r) for r in runs(request).all()]


@router.post("", status_code=202, responses={400: {}})
def start_run(body: StartRun, request: Request, user: Analyst) -> dict[str, Any]:
    """Start a patrol over captures already on this server (under the allowed capture folders)."""
    registry = runs(request)
    try:
        paths = [registry.check_capture(c) for c in body.captures]
    except RunError as exc:
        raise HTTPException(400, str(exc)) from None
    return run_json(registry.start(paths, by=user.name))


@router.post("/upload", status_code=202, responses={400: {}, 413: {}})
def upload_run(
    request: Request, user: Analyst, capture: Annotated[UploadFile, File()]
) -> dict[str, Any]:
    """Start a patrol over an uploaded capture (pcap or pcapng), kept under the runs folder."""
    registry = runs(request)
    name = Path(capture.filename or "upload.pcap").name.lstrip(".") or "upload.pcap"
    folder = registry.folder.parent / "uploads" / secrets.token_hex(8)
    folder.mkdir(parents=True)
    path = folder / name
    size = 0
    with path.open("wb") as out:
        while chunk := capture.file.read(CHUNK):
            size += len(chunk)
            if size > UPLOAD_MAX:
                out.close()
                path.unlink()
                raise HTTPException(413, f"a capture may be at most {UPLOAD_MAX} bytes")
            out.write(chunk)
    if size == 0:
        path.unlink()
        raise HTTPException(400, "the uploaded capture is empty")
    return run_json(registry.start([path], by=user.name))


@router.get("/{run_id}", responses={404: {}})
def get_run(run_id: str, request: Request, user: Analyst) -> dict[str, Any]:
    """One run's state; ``report_url`` once it is done."""
    run = run_or_404(request, run_id)
    data = run_json(run)
    if run.state == "done":
        data["report_url"] = f"/api/runs/{run.id}/report"
    return data


@router.get("/{run_id}/report", responses={404: {}, 409: {}})
def get_report(run_id: str, request: Request, user: Analyst) -> dict[str, Any]:
    """The run's ``report.json`` (docs/report.md), as the patrol wrote it."""
    registry = runs(request)
    run = run_or_404(request, run_id)
    if run.state != "done":
        raise HTTPException(409, f"run {run_id} is {run.state}; it has no report yet")
    report = registry.report(run)
    if report is None:
        raise HTTPException(404, f"run {run_id} has no readable report")
    return report
