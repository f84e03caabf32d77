"""Reports of a case from Jinja2 templates, as HTML or PDF.

Four kinds, one template each under ``mamori/cases/templates/`` (docs/reports.md says what each
contains and where each fact comes from):

- ``technical``: the technical incident report (timeline, entities, techniques, decisions);
- ``referral``: a criminal referral (facts, timeline, evidence index with hashes);
- ``attribution``: an attribution statement draft (only what the assessment supports);
- ``regulator``: the mandatory incident report of a critical-infrastructure operator.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from mamori import __version__
from mamori.cases.attribution import BANDS, Assessment, assess
from mamori.cases.reports import facts
from mamori.cases.reports.operator import OperatorProfile, load_operator
from mamori.cases.reports.statement import statement
from mamori.cases.reports.view import CaseView, ReportError
from mamori.correlate.attack import technique_name

KINDS: dict[str, str] = {
    "technical": "Technical incident report",
    "referral": "Criminal referral",
    "attribution": "Attribution statement (draft)",
    "regulator": "Incident report to the regulator",
}
FORMATS = ("html", "pdf")

_ENV = Environment(
    loader=PackageLoader("mamori.cases", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _utc(value: object) -> str:
    """'2024-12-18T18:35:21.034784+00:00' -> '2024-12-18 18:35:21 UTC' (blank for none)."""
    if value in (None, ""):
        return "—"
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


_ENV.filters["utc"] = _utc
_ENV.filters["attack_name"] = technique_name

_TLP_ORDER = ("clear", "green", "amber", "amber+strict", "red")


def _tlp(assessment: Assessment, floor: str) -> str:
    """The most restrictive of ``floor`` and the TLP of any intel the assessment cites."""
    seen = [e.tlp.lower() for h in assessment.hypotheses for e in h.evidence_for]
    known = [t for t in [floor, *seen] if t in _TLP_ORDER]
    return max(known, key=_TLP_ORDER.index)


__all__ = [
    "FORMATS",
    "KINDS",
    "CaseView",
    "ReportError",
    "context",
    "load_operator",
    "render_html",
    "write_report",
]


def context(
    kind: str,
    view: CaseView,
    *,
    operator: OperatorProfile | None = None,
    indicators: pl.DataFrame | None = None,
    assessment: Assessment | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Everything a template may show, computed here so templates only lay it out."""
    if kind not in KINDS:
        raise ReportError(f"unknown report kind {kind!r} (one of {', '.join(KINDS)})")
    if kind == "regulator" and operator is None:
        raise ReportError("the regulator report needs the operator profile (--operator FILE)")
    assessment = assessment or assess(view.id, view.incidents, indicators)
    first, last = facts.span(view)
    ctx: dict[str, Any] = {
        "kind": kind,
        "title": KINDS[kind],
        "case": view,
        "generated": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "version": __version__,
        "first_seen": first,
        "last_seen": last,
        "severity": facts.worst_severity(view),
        "timeline": facts.timeline(view),
        "entities": facts.entities(view),
        "techniques": facts.techniques(view),
        "decisions": facts.decisions(view),
        "evidence": facts.evidence_summary(view),
        "evidence_files": facts.evidence_index(view),
        "assessment": assessment,
        "bands": BANDS,
        "tlp": _tlp(assessment, "amber"),
        "statement": statement(assessment) if kind == "attribution" else None,
        "operator": operator,
        "impact": facts.impact(view),
        "affected": _affected(view, operator) if operator else [],
    }
    return ctx


# How the regulator form names a host's part: mamori's "attacker" inside the operator's own network
# is a host sending the malicious traffic, most often compromised rather than hostile.
_ROLE_WORDS = {
    ("attacker", "internal"): "source of the malicious traffic (own host, possibly compromised)",
    ("attacker", "external"): "source of the malicious traffic",
    ("victim", "internal"): "target",
    ("victim", "external"): "target (outside the operator's network)",
}


def _affected(view: CaseView, operator: OperatorProfile) -> list[dict[str, Any]]:
    """The operator's hosts the case names (victims, and internal hosts acting as attackers,
    e.g. an infected machine beaconing out), with the operator's name for their system."""
    rows = []
    for e in facts.entities(view):
        if e["role"] == "domain":
            continue
        system = operator.system_of(e["value"])
        if e["role"] == "victim" or system is not None or e["scope"] == "internal":
            rows.append(
                {
                    "address": e["value"],
                    "role": _ROLE_WORDS.get((e["role"], e["scope"]), e["role"]),
                    "system": system.name if system else None,
                    "service": system.service if system else None,
                    "incidents": e["incidents"],
                }
            )
    return rows


def render_html(kind: str, view: CaseView, **kwargs: Any) -> str:
    ctx = context(kind, view, **kwargs)  # checks the kind before a template is looked up
    return _ENV.get_template(f"{kind}.html").render(**ctx)


def write_report(kind: str, view: CaseView, fmt: str, out: Path, **kwargs: Any) -> Path:
    """Render one report kind of a case to ``out`` as HTML or PDF."""
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r} (html or pdf)")
    html = render_html(kind, view, **kwargs)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        out.write_text(html, encoding="utf-8")
    else:
        from mamori.cases.reports.pdf import write_pdf

        write_pdf(html, out)
    return out
