"""Charts drawn on the server as inline SVG: no script, no third-party code, readable offline and
by a screen reader (each chart has a title and a text summary; the numbers are in a table too)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

SEVERITY_COLOURS = {
    "critical": "#8b0000",
    "high": "#c0392b",
    "medium": "#d68910",
    "low": "#2e86c1",
}


def bars(
    points: Sequence[tuple[str, float]],
    title: str,
    *,
    width: int = 640,
    height: int = 160,
    colour: str = "#2e86c1",
    unit: str = "",
) -> str:
    """A bar chart over time: ``points`` are (label, value) in order; labels are ISO times."""
    label = escape(title)
    if not points:
        return f'<p class="empty">{label}: nothing yet.</p>'
    top = max(v for _, v in points) or 1.0
    pad_l, pad_b, pad_t = 44, 22, 8
    inner_w, inner_h = width - pad_l - 4, height - pad_b - pad_t
    step = inner_w / len(points)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" aria-label="{label}">',
        f"<title>{label}</title>",
        f'<line x1="{pad_l}" y1="{pad_t + inner_h}" x2="{width - 4}" y2="{pad_t + inner_h}" '
        'class="axis"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 10}" class="tick" text-anchor="end">'
        f"{_short(top)}{escape(unit)}</text>",
        f'<text x="{pad_l - 4}" y="{pad_t + inner_h}" class="tick" text-anchor="end">0</text>',
    ]
    for n, (t, v) in enumerate(points):
        h = inner_h * (v / top)
        x = pad_l + n * step + step * 0.1
        parts.append(
            f'<rect x="{x:.1f}" y="{pad_t + inner_h - h:.1f}" width="{max(step * 0.8, 1):.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{escape(_when(t))}: {_short(v)}'
            f"{escape(unit)}</title></rect>"
        )
    for n in {0, len(points) - 1}:
        anchor = "start" if n == 0 else "end"
        x = pad_l if n == 0 else width - 4
        parts.append(
            f'<text x="{x}" y="{height - 6}" class="tick" text-anchor="{anchor}">'
            f"{escape(_when(points[n][0]))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def severity_bar(counts: dict[str, int], *, width: int = 640, height: int = 28) -> str:
    """One stacked bar: incidents by severity (the legend is the table beside it)."""
    total = sum(counts.values())
    if not total:
        return '<p class="empty">No incidents yet.</p>'
    x = 0.0
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="Incidents by severity">',
        "<title>Incidents by severity</title>",
    ]
    for sev in ("critical", "high", "medium", "low"):
        n = counts.get(sev, 0)
        if not n:
            continue
        w = width * n / total
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" '
            f'fill="{SEVERITY_COLOURS[sev]}"><title>{sev}: {n}</title></rect>'
        )
        x += w
    parts.append("</svg>")
    return "".join(parts)


def entity_graph(incident: dict[str, Any], *, width: int = 640) -> str:
    """Attackers on the left, victims on the right, domains below; an edge per alert (src → dst),
    labelled with its detector. Enough to see who did what to whom at a glance."""
    ents = incident.get("entities", {})
    attackers = list(ents.get("attackers", []))
    victims = [v for v in ents.get("victims", []) if v not in attackers]
    domains = list(ents.get("domains", []))[:8]
    if not attackers and not victims and not domains:
        return '<p class="empty">No entities named.</p>'
    pos: dict[str, tuple[float, float]] = {}
    height = max(120, 50 * max(len(attackers), len(victims), 1) + 20) + (70 if domains else 0)

    def column(names: list[str], x: float, top: float, bottom: float) -> None:
        for n, name in enumerate(names):
            pos[name] = (x, top + (bottom - top) * (n + 0.5) / max(len(names), 1))

    lower = height - (70 if domains else 10)
    column(attackers, 110, 10, lower)
    column(victims, width - 110, 10, lower)
    for n, d in enumerate(domains):
        pos[d] = (width * (n + 0.5) / len(domains), height - 30)
    parts = [
        f'<svg class="graph" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="Entity graph of {escape(str(incident.get("id", "")))}">',
        "<title>Entity graph: attackers (left), victims (right), domains (below)</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    edges: dict[tuple[str, str], set[str]] = {}
    for alert in incident.get("alerts", []):
        src, dst = alert.get("src"), alert.get("dst")
        for a, b in ((src, dst), *((src, d) for d in alert.get("domains", []))):
            if a in pos and b in pos and a != b:
                edges.setdefault((a, b), set()).add(str(alert.get("detector", "")))
    for (a, b), dets in sorted(edges.items()):
        (x1, y1), (x2, y2) = pos[a], pos[b]
        dx, dy = x2 - x1, y2 - y1
        dist = math.hypot(dx, dy) or 1.0
        sx, sy = x1 + dx / dist * 12, y1 + dy / dist * 12
        ex, ey = x2 - dx / dist * 14, y2 - dy / dist * 14
        label = escape(", ".join(sorted(dets)))
        parts.append(
            f'<line x1="{sx:.1f}" y1="{sy:.1f}" x2="{ex:.1f}" y2="{ey:.1f}" class="edge" '
            f'marker-end="url(#arrow)"><title>{escape(a)} → {escape(b)}: {label}</title></line>'
            f'<text x="{(x1 + x2) / 2:.1f}" y="{(y1 + y2) / 2 - 4:.1f}" class="edge-label" '
            f'text-anchor="middle">{label}</text>'
        )
    for name, (x, y) in pos.items():
        kind = "attacker" if name in attackers else "victim" if name in victims else "domain"
        parts.append(
            f'<g class="node {kind}"><circle cx="{x:.1f}" cy="{y:.1f}" r="10"/>'
            f'<text x="{x:.1f}" y="{y + 24:.1f}" text-anchor="middle">{escape(name)}</text>'
            f"<title>{kind}: {escape(name)}</title></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _short(v: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.1f}{suffix}"
    return f"{v:g}" if v != int(v) else str(int(v))
