"""Write the patrol report as JSON (the contract) and as one self-contained HTML page.

The page carries its styles and charts inline (SVG drawn here), so it opens offline and can be
attached to a ticket as one file; Jinja2 autoescaping keeps record text from becoming markup.
"""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

_ENV = Environment(
    loader=PackageLoader("mamori.report", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def write_json(report: dict[str, object], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")


def bars(values: list[int | float], width: int = 720, height: int = 120) -> list[dict[str, float]]:
    """Bar geometry for an inline SVG chart (the template draws the rectangles)."""
    if not values:
        return []
    top = max(values) or 1
    w = width / len(values)
    return [
        {
            "x": i * w,
            "y": height - height * v / top,
            "w": max(w - 1, 1),
            "h": height * v / top,
            "v": v,
        }
        for i, v in enumerate(values)
    ]


def write_html(report: dict[str, object], path: Path) -> None:
    traffic = report["traffic"]
    series = traffic.get("series", []) if isinstance(traffic, dict) else []
    html = _ENV.get_template("patrol.html").render(
        r=report,
        conn_bars=bars([s["connections"] for s in series]),
    )
    path.write_text(html, encoding="utf-8")
