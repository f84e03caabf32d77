"""Incidents and alerts, read from patrol reports: every finished run's (the newest copy of an
incident wins), or one chosen run's with ``?run=``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from mamori.web.api.deps import PROTECTED, Analyst, run_or_404, runs
from mamori.web.console.runs import Run, alert_row, incident_row

router = APIRouter(prefix="/api", tags=["incidents"], responses=PROTECTED)

Severity = Literal["critical", "high", "medium", "low"]
RunQ = Annotated[str | None, Query(description="A run id (default: every finished run).")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


def _incidents(request: Request, run_id: str | None) -> list[tuple[Run, dict[str, Any]]]:
    # The registry's merged list as it is (no copy: a page of 10,000 must not cost a pass).
    if run_id is None:
        return runs(request).incidents()
    run = run_or_404(request, run_id)
    report = runs(request).report(run) if run.state == "done" else None
    if report is None:
        raise HTTPException(409, f"run {run_id} is {run.state}; it has no report yet")
    return [(run, inc) for inc in report.get("incidents", [])]


@router.get("/incidents", responses={404: {}, 409: {}})
def list_incidents(
    request: Request,
    user: Analyst,
    run: RunQ = None,
    severity: Severity | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Incidents, worst first: ``{"total", "items": [{id, title, severity, ..., run}]}``."""
    rows = _incidents(request, run)
    if severity is not None:
        rows = [(r, inc) for r, inc in rows if inc.get("severity") == severity]
    page = rows[offset : offset + limit]
    return {"total": len(rows), "items": [incident_row(inc) | {"run": r.id} for r, inc in page]}


@router.get("/incidents/{incident_id}", responses={404: {}, 409: {}})
def get_incident(
    incident_id: str, request: Request, user: Analyst, run: RunQ = None
) -> dict[str, Any]:
    """One incident as the report has it (alerts, entities, techniques), with its run."""
    if run is None:
        found = runs(request).incident(incident_id)
        if found is None:
            raise HTTPException(404, f"no incident {incident_id!r}")
        return found[1] | {"run": found[0].id}
    for r, inc in _incidents(request, run):
        if inc["id"] == incident_id:
            return inc | {"run": r.id}
    raise HTTPException(404, f"no incident {incident_id!r} in run {run}")


@router.get("/alerts", responses={404: {}, 409: {}})
def list_alerts(
    request: Request,
    user: Analyst,
    run: RunQ = None,
    incident: str | None = None,
    detector: str | None = None,
    severity: Severity | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Alerts of the incidents (``{"total", "items"}``), filtered by incident, detector, severity."""
    rows = [
        alert_row(a, inc["id"]) | {"run": r.id}
        for r, inc in _incidents(request, run)
        if incident is None or inc["id"] == incident
        for a in inc.get("alerts", [])
        if (detector is None or a.get("detector") == detector)
        and (severity is None or a.get("severity") == severity)
    ]
    return {"total": len(rows), "items": rows[offset : offset + limit]}
