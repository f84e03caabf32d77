"""Alerts become incidents: linked by the entities they share, close in time, ordered by stage.

Two alerts belong to the same incident when they name a common host (as attacker or victim) and
the later starts within ``gap`` of the earlier's end; incidents are the connected components of
that relation. An incident's severity is its worst alert's, its confidence combines independent
alerts (1 − Π(1 − cᵢ)), and its stages list the ATT&CK tactics seen, in kill-chain order.

Alerts are few (they are already aggregated by the detectors), so this stage works on Python
objects; the detectors and everything before them stay columnar.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from mamori.correlate.attack import stage_rank, tactic_order, tactics_of, technique_name
from mamori.correlate.attribution import hypotheses
from mamori.schema.alerts import SEVERITIES

GAP = timedelta(hours=1)
_ADDRESS = re.compile(r"^[0-9.]+$|:")  # IPv4 dotted quad, or anything with a colon (IPv6)
MAX_CONFIDENCE = 0.99  # never certainty from inference alone


@dataclass
class Incident:
    id: str
    title: str
    severity: str
    confidence: float
    techniques: list[str]
    attackers: list[str]
    victims: list[str]
    domains: list[str]
    first_seen: datetime
    last_seen: datetime
    alerts: list[dict[str, object]]
    stages: list[dict[str, object]] = field(default_factory=list)
    attribution: list[dict[str, object]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "confidence": round(self.confidence, 3),
            "techniques": self.techniques,
            "technique_names": {t: technique_name(t) for t in self.techniques},
            "stages": self.stages,
            "entities": {
                "attackers": self.attackers,
                "victims": self.victims,
                "domains": self.domains,
            },
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "alerts": self.alerts,
            "attribution": self.attribution,
        }


class _Sets:
    """Union-find over alert indices."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def host_aliases(pairs: Iterable[str]) -> dict[str, str]:
    """``name=address`` settings as a lookup from lower-case host name to address.

    A fully qualified name also answers for its first label (``pc01.example.corp`` for ``PC01``),
    the way Windows logs and syslog often name the same machine differently.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, address = pair.partition("=")
        if not sep or not name.strip() or not address.strip():
            raise ValueError(f"host_addresses: {pair!r} is not name=address")
        name = name.strip().lower().rstrip(".")
        out[name] = address.strip()
        out.setdefault(name.split(".", 1)[0], address.strip())
    return out


def canonical(entity: object, aliases: Mapping[str, str]) -> str | None:
    """The entity alerts are linked by: an address as is, a host name through ``aliases``."""
    if entity is None:
        return None
    text = str(entity)
    if not aliases or _ADDRESS.match(text):
        return text
    name = text.lower().rstrip(".")
    return aliases.get(name) or aliases.get(name.split(".", 1)[0]) or name


def correlate(
    alerts: pl.DataFrame,
    gap: timedelta = GAP,
    indicators: pl.DataFrame | None = None,
    aliases: Mapping[str, str] | None = None,
) -> list[Incident]:
    """Incidents from alerts; ``indicators`` (the intel store) lets them carry attribution, and
    ``aliases`` (host name -> address) joins host logs' names with network records' addresses."""
    aliases = aliases or {}
    rows = alerts.sort("first_seen").to_dicts()
    for a in rows:
        a["_src"], a["_dst"] = canonical(a["src"], aliases), canonical(a["dst"], aliases)
    sets = _Sets(len(rows))
    # For each host, alerts naming it, in time order: link neighbours that are close in time.
    by_host: dict[str, list[int]] = {}
    for i, a in enumerate(rows):
        for host in {a["_src"], a["_dst"]} - {None}:
            by_host.setdefault(str(host), []).append(i)
    for idxs in by_host.values():
        end = rows[idxs[0]]["last_seen"]
        for prev, cur in itertools.pairwise(idxs):
            if rows[cur]["first_seen"] - end <= gap:
                sets.union(prev, cur)
            end = max(end, rows[cur]["last_seen"])
    groups: dict[int, list[dict[str, object]]] = {}
    for i, a in enumerate(rows):
        groups.setdefault(sets.find(i), []).append(a)
    incidents = [_incident(g) for g in groups.values()]
    if indicators is not None:
        for inc, g in zip(incidents, groups.values(), strict=True):
            inc.attribution = hypotheses(g, indicators)
    return sorted(incidents, key=lambda x: (-SEVERITIES.index(x.severity), x.first_seen))


def _incident(group: list[dict[str, object]]) -> Incident:
    severity = max((str(a["severity"]) for a in group), key=SEVERITIES.index)
    miss = 1.0
    for a in group:
        miss *= 1.0 - float(a["confidence"])  # type: ignore[arg-type]
    techniques = sorted(
        {t for a in group for t in a["techniques"]}, key=lambda t: (stage_rank(t), t)
    )  # type: ignore[attr-defined]
    attackers = sorted({str(a["_src"]) for a in group if a["_src"]})
    victims = sorted({str(a["_dst"]) for a in group if a["_dst"]} - set(attackers))
    first = min(a["first_seen"] for a in group)  # type: ignore[type-var]
    last = max(a["last_seen"] for a in group)  # type: ignore[type-var]
    digest = hashlib.sha256("|".join(sorted(str(a["key"]) for a in group)).encode()).hexdigest()
    stages: list[dict[str, object]] = []
    for tactic in tactic_order():
        hits = [t for t in techniques if tactic in tactics_of(t)]
        if hits:
            when = min(a["first_seen"] for a in group if set(a["techniques"]) & set(hits))  # type: ignore[arg-type, type-var]
            stages.append({"tactic": tactic, "techniques": hits, "first_seen": when.isoformat()})  # type: ignore[attr-defined]
    return Incident(
        id=f"INC-{digest[:12]}",
        title=_title(techniques, group, victims),
        severity=severity,
        confidence=min(MAX_CONFIDENCE, 1.0 - miss),
        techniques=techniques,
        attackers=attackers,
        victims=victims,
        domains=sorted({str(d) for a in group for d in (a.get("domains") or [])}),
        first_seen=first,  # type: ignore[arg-type]
        last_seen=last,  # type: ignore[arg-type]
        alerts=[_alert_json(a) for a in group],
        stages=stages,
    )


def _title(techniques: list[str], group: list[dict[str, object]], victims: list[str]) -> str:
    """The latest-stage technique, by the sources of *that* technique's alerts, against the victims."""
    what = technique_name(techniques[-1]) if techniques else "Suspicious activity"
    lead = [a for a in group if techniques and techniques[-1] in a["techniques"]]  # type: ignore[operator]
    attackers = sorted({str(a["_src"]) for a in lead if a["_src"]})
    who = (
        attackers[0] if len(attackers) == 1 else f"{len(attackers)} sources" if attackers else None
    )
    whom = victims[0] if len(victims) == 1 else f"{len(victims)} hosts" if victims else None
    if who and whom:
        return f"{what} by {who} against {whom}"
    if whom:
        return f"{what} against {whom}"
    return f"{what} by {who}" if who else what


def _alert_json(a: dict[str, object]) -> dict[str, object]:
    return {
        "detector": a["detector"],
        "techniques": list(a["techniques"]),  # type: ignore[call-overload]
        "severity": a["severity"],
        "confidence": round(float(a["confidence"]), 3),  # type: ignore[arg-type]
        "summary": a["summary"],
        "src": a["src"],
        "dst": a["dst"],
        "domains": list(a.get("domains") or []),  # type: ignore[call-overload]
        "first_seen": a["first_seen"].isoformat(),  # type: ignore[attr-defined]
        "last_seen": a["last_seen"].isoformat(),  # type: ignore[attr-defined]
        "count": a["count"],
        "evidence": {"table": a["evidence_table"], "uids": list(a["evidence"])},  # type: ignore[call-overload]
    }
