"""HTML to PDF with WeasyPrint, offline.

Why a fetcher that refuses every URL: a report about an attack must not make the machine that
renders it reach out to the internet (a template or a record's text could name a URL); the
templates carry their CSS inline and use the system's fonts, so nothing needs fetching.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mamori.cases.reports.view import ReportError


def _no_fetch(url: str, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
    raise ReportError(f"report rendering refuses to fetch {url}: reports are rendered offline")


def write_pdf(html: str, path: Path) -> None:
    import logging

    from weasyprint import HTML

    # WeasyPrint logs font and CSS notes at WARNING; a report command prints only its own errors.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    HTML(string=html, url_fetcher=_no_fetch, base_url=None).write_pdf(path)
