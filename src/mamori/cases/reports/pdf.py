"""HTML to PDF with WeasyPrint, offline.

Why a fetcher that refuses every URL: a report about an attack must not make the machine that
renders it reach out to the internet (a template or a record's text could name a URL); the
templates carry their CSS inline and use the system's fonts, so nothing needs fetching.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mamori.cases.reports.view import ReportError


def refuse(url: str) -> None:
    raise ReportError(f"report rendering refuses to fetch {url}: reports are rendered offline")


def _fetcher() -> Any:
    """WeasyPrint's fetcher interface: a URLFetcher subclass (WeasyPrint >= 68), else a function."""
    try:
        from weasyprint.urls import URLFetcher
    except ImportError:  # older WeasyPrint: any callable
        return lambda url, *_a, **_k: refuse(url)

    class OfflineFetcher(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> Any:
            refuse(url)

        def __call__(self, url: str) -> Any:
            return self.fetch(url)

    return OfflineFetcher(allowed_protocols=())


def write_pdf(html: str, path: Path) -> None:
    from weasyprint import HTML

    # WeasyPrint logs refused fetches and font notes at WARNING; a report command prints only its
    # own errors.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    HTML(string=html, url_fetcher=_fetcher(), base_url=None).write_pdf(path)
