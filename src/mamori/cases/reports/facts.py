"""The facts every report draws on, computed once from a case view.

Each function returns plain rows whose fields come from one named place (report.json incidents and
alerts, the ATT&CK table shipped with correlate, the evidence manifest, the operator profile), so
``docs/reports.md`` can say where every line of a report comes from and a template never computes.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from typing import Any

from mamori.cases.reports.view import CaseView
from mamori.correlate.attack import stage_rank, tactics_of, technique_name

# What a tactic, when observed, says about the security property that was hit (for the
# regulator's "impact" section): the CIA property at stake, in the words of NIS2-style forms.
TACTIC_IMPACT: dict[str, str] = {
    "impact": "availability or integrity of the service",
    "exfiltration": "confidentiality of data",
    "collection": "confidentiality of data",
    "credential-access": "confidentiality of credentials",
    "command-and-control": "integrity of the affected hosts (remote control by a third party)",
    "lateral-movement": "integrity of further hosts of the network",
    "execution": "integrity of the affected hosts",
    "persistence": "integrity of the affected hosts",
    "privilege-escalation": "integrity of the affected hosts",
    "defense-evasion": "integrity of the affected hosts",
    "initial-access": "integrity of the affected hosts",
    "discovery": "confidentiality of network information (reconnaissance)",
    "reconnaissance": "confidentiality of network information (reconnaissance)",
    "resource-development": "none on the operator's systems (adversary preparation)",
}


def timeline(view: CaseView) -> list[dict[str, Any]]:
    """Every alert of the case's incidents, oldest first (report.json ``alerts[]``)."""
    rows = []
    for inc in view.incidents:
        for a in inc.get("alerts") or []:
            rows.append(
                {
                    "time": a.get("first_seen"),
                    "until": a.get("last_seen"),
                    "incident": inc["id"],
                    "detector": a.get("detector"),
                    "techniques": list(a.get("techniques") or []),
                    "severity": a.get("severity"),
                    "confidence": a.get("confidence"),
                    "summary": a.get("summary"),
                    "src": a.get("src"),
                    "dst": a.get("dst"),
                    "count": a.get("count"),
                    "evidence_table": (a.get("evidence") or {}).get("table"),
                    "uids": list((a.get("evidence") or {}).get("uids") or []),
                }
            )
    return sorted(rows, key=lambda r: (str(r["time"]), str(r["incident"]), str(r["detector"])))


def entities(view: CaseView) -> list[dict[str, Any]]:
    """Each address or domain, its role(s) and the incidents naming it (``entities``)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for inc in view.incidents:
        ents = inc.get("entities") or {}
        for role, kind in (("attackers", "attacker"), ("victims", "victim"), ("domains", "domain")):
            for value in ents.get(role) or []:
                row = seen.setdefault(
                    (str(value), kind),
                    {
                        "value": str(value),
                        "role": kind,
                        "scope": _scope(str(value)),
                        "incidents": [],
                    },
                )
                row["incidents"].append(inc["id"])
    order = {"attacker": 0, "victim": 1, "domain": 2}
    return sorted(seen.values(), key=lambda r: (order[r["role"]], r["value"]))


def _scope(value: str) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return "domain"
    return "internal" if ip.is_private or ip.is_loopback or ip.is_link_local else "external"


def techniques(view: CaseView) -> list[dict[str, Any]]:
    """ATT&CK techniques in kill-chain order with their names and tactics (mamori.correlate.attack)."""
    used: dict[str, list[str]] = defaultdict(list)
    for inc in view.incidents:
        for t in inc.get("techniques") or []:
            used[str(t)].append(inc["id"])
    return [
        {
            "id": t,
            "name": technique_name(t),
            "tactics": tactics_of(t),
            "incidents": used[t],
        }
        for t in sorted(used, key=lambda t: (stage_rank(t), t))
    ]


def span(view: CaseView) -> tuple[str | None, str | None]:
    """The earliest first_seen and latest last_seen of the case's incidents."""
    firsts = [str(i["first_seen"]) for i in view.incidents if i.get("first_seen")]
    lasts = [str(i["last_seen"]) for i in view.incidents if i.get("last_seen")]
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def impact(view: CaseView) -> list[dict[str, Any]]:
    """The security properties at stake, by the tactics of the techniques observed."""
    by_property: dict[str, set[str]] = defaultdict(set)
    for t in techniques(view):
        for tactic in t["tactics"]:
            by_property[TACTIC_IMPACT.get(tactic, f"unclassified ({tactic})")].add(t["id"])
    return [{"property": p, "techniques": sorted(ts)} for p, ts in sorted(by_property.items())]


def worst_severity(view: CaseView) -> str:
    order = ("low", "medium", "high", "critical")
    sev = [str(i.get("severity")) for i in view.incidents if i.get("severity") in order]
    return max(sev, key=order.index) if sev else "unknown"


def evidence_index(view: CaseView) -> list[dict[str, Any]]:
    """The files of the latest evidence package with their hashes (its manifest's ``files``)."""
    manifest = view.evidence or {}
    files = manifest.get("files") or []
    if isinstance(files, dict):  # a manifest keyed by path
        files = [{"path": k, **v} for k, v in files.items()]
    rows = []
    for f in files:
        source = f.get("source") or f.get("source_file") or {}
        if isinstance(source, dict):
            src_path, src_hash = source.get("path"), source.get("sha256")
        else:
            src_path, src_hash = source, f.get("source_sha256")
        rows.append(
            {
                "path": f.get("path") or f.get("name"),
                "sha256": f.get("sha256"),
                "size": f.get("size"),
                "source": src_path,
                "source_sha256": src_hash,
                "acquired": f.get("acquired") or f.get("acquired_at") or manifest.get("acquired"),
                "description": f.get("description") or f.get("kind") or f.get("role"),
            }
        )
    return rows


def evidence_summary(view: CaseView) -> dict[str, Any] | None:
    """Where the package is, what signs it and what built it, or None when there is none."""
    if view.evidence is None:
        return None
    m = view.evidence
    tool = m.get("tool") or {}
    return {
        "path": view.evidence_path,
        "manifest_sha256": view.evidence_manifest_sha256,
        "key": view.evidence_key or (m.get("signature") or {}).get("key_fingerprint"),
        "acquired": m.get("acquired") or m.get("acquired_at") or m.get("created"),
        "tool": tool if isinstance(tool, str) else " ".join(str(v) for v in tool.values()),
        "custody_entries": view.custody_entries,
        "custody_intact": view.custody_intact,
    }


def decisions(view: CaseView) -> list[dict[str, Any]]:
    """Linked respond decisions with what the respond stage says about each (if it keeps it)."""
    keys = (
        "id", "action", "target", "state", "verdict", "by", "reason", "incident", "judged",
        "expires", "ttl",
    )  # fmt: skip
    return [{k: d.get(k) for k in keys} | {"other": _rest(d, keys)} for d in view.decisions]


def _rest(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys and v not in (None, "", [], {})}
