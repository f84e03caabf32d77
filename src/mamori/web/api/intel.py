"""Threat intelligence: list the intel store (analyst), import a feed file into it (responder)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile

from mamori.intel.common import check_tlp
from mamori.intel.schema import TYPES, IntelFormatError, default_store
from mamori.intel.store import import_files, read
from mamori.web.api.deps import PROTECTED, Analyst, Responder

router = APIRouter(prefix="/api/intel", tags=["intel"], responses=PROTECTED)

FEED_MAX = int(os.environ.get("MAMORI_FEED_MAX", str(256 << 20)))


def _uploads() -> Path:
    # Kept (not a temporary file): re-importing the same feed replaces its entries, which the
    # store recognises by source and file path.
    return default_store().parent / "intel-uploads"


@router.get("", responses={400: {}})
def list_intel(
    request: Request,
    user: Analyst,
    type: str | None = None,
    source: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    """Indicators (``{"total", "by_source", "items"}``), optionally of one type or source."""
    if type is not None and type not in TYPES:
        raise HTTPException(400, f"unknown type {type!r}; one of {', '.join(TYPES)}")
    frame = read(default_store())
    if type is not None:
        frame = frame.filter(pl.col("type") == type)
    if source is not None:
        frame = frame.filter(pl.col("source") == source)
    counts = frame.group_by("source").len().sort("source")
    return {
        "total": frame.height,
        "by_source": dict(counts.iter_rows()),
        "items": frame.slice(offset, limit).to_dicts(),
    }


@router.post("/import", status_code=201, responses={400: {}, 413: {}})
def import_intel(
    request: Request,
    user: Responder,
    feed: Annotated[UploadFile, File(description="STIX 2.1 bundle, MISP event/feed or a list.")],
    tlp: Annotated[str, Form()] = "clear",
    source: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """Import one feed file; re-importing a file of the same name replaces its entries."""
    name = Path(feed.filename or "feed").name.lstrip(".") or "feed"
    data = feed.file.read(FEED_MAX + 1)
    if len(data) > FEED_MAX:
        raise HTTPException(413, f"a feed may be at most {FEED_MAX} bytes")
    folder = _uploads()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    try:
        (summary,) = import_files([path], default_store(), check_tlp(tlp), source)
    except (IntelFormatError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from None
    return {
        "file": name,
        "format": summary.format,
        "source": summary.source,
        "indicators": summary.indicators,
        "skipped": summary.skipped,
        "reasons": [list(r) for r in summary.reasons[:100]],
    }
