"""Hunting: one read-only DuckDB query over a run's lake views (conn, dns, http, ssl, alerts, ...).

Two fences: the statement must parse as exactly one SELECT (``WITH ... SELECT``, ``FROM t``
included) by DuckDB's own parser, so COPY, ATTACH, SET, PRAGMA, INSERT and a second statement are
refused before anything runs; then :func:`mamori.web.console.hunt.hunt` runs it with external
access off and configuration locked, stopped after ``timeout`` seconds, at most ``limit`` rows.
"""

from __future__ import annotations

from typing import Any

import duckdb
from fastapi import APIRouter, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from mamori.web.api.deps import PROTECTED, Analyst, run_or_404, runs
from mamori.web.console.hunt import HuntError, hunt

router = APIRouter(prefix="/api", tags=["hunt"], responses=PROTECTED)

TIMEOUT = 20.0  # seconds


class HuntIn(BaseModel):
    sql: str = Field(min_length=1, max_length=20000)
    run: str | None = Field(None, description="Whose lake (default: the newest finished run).")
    limit: int = Field(1000, ge=1, le=10000)


def check_select(sql: str) -> None:
    """Refuse anything but a single SELECT (HTTP 400 naming what was found)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise HTTPException(400, f"the query does not parse: {str(exc).strip()}") from None
    if len(statements) != 1:
        raise HTTPException(400, f"send exactly one statement, not {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise HTTPException(400, f"only a SELECT may run here, not {kind.name}")


@router.post("/hunt", responses={400: {}, 404: {}})
def run_hunt(body: HuntIn, request: Request, user: Analyst) -> dict[str, Any]:
    """``{"run", "columns", "rows", "truncated"}`` of one SELECT over the run's lake."""
    check_select(body.sql)
    if body.run is not None:
        run = run_or_404(request, body.run)
    else:
        newest = next(runs(request).finished(), None)
        if newest is None:
            raise HTTPException(404, "no finished run has a lake to hunt in")
        run = newest[0]
    try:
        columns, rows = hunt(run.folder / "lake", body.sql, limit=body.limit + 1, timeout=TIMEOUT)
    except HuntError as exc:
        raise HTTPException(400, str(exc)) from None
    return {
        "run": run.id,
        "columns": columns,
        "rows": jsonable_encoder([list(r) for r in rows[: body.limit]]),
        "truncated": len(rows) > body.limit,
    }
