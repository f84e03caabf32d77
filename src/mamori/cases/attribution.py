"""The attribution assessment of a case: who may be behind it, on what evidence, and how sure.

Why a separate record from the incident-level hypotheses of ``mamori.correlate.attribution``: a
case gathers several incidents, and a prosecutor, a regulator or a foreign ministry reads one
judgement per case, not one per incident. The assessment pools the incidents' hypotheses (one per
intrusion set or threat actor), re-grades the pooled evidence with the same rule correlate uses, and
adds what the data shows about the *country of the infrastructure*, but only where an intel source
ties a matched indicator to a location: the project keeps no geolocation database, and an address's
country is never guessed.

Two scales, as the US intelligence community's ICD 203 keeps them apart:
- **likelihood** (estimative language): remote, very unlikely, unlikely, roughly even chance,
  likely, very likely, almost certain, each a probability band;
- **analytic confidence** (low, moderate, high): how good the evidence is, not how probable the
  judgement.

Nothing here may be stronger than its evidence: indicator overlap alone never exceeds "roughly even
chance" and moderate confidence (infrastructure is rented, shared and reused); a hypothesis checks
that on construction, so no code path can build an over-confident one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import polars as pl

from mamori.correlate.attribution import ESTIMATIVE, OVERLAP_CAP, PER_INDICATOR, likelihood_words

# ICD 203 probability bands of each expression of likelihood (lower, upper), for the reader.
BANDS: dict[str, tuple[int, int]] = {
    "remote": (1, 5),
    "very unlikely": (5, 20),
    "unlikely": (20, 45),
    "roughly even chance": (45, 55),
    "likely": (55, 80),
    "very likely": (80, 95),
    "almost certain": (95, 99),
}
# Weakest first: the rank of a term is its position here.
LIKELIHOOD_ORDER: tuple[str, ...] = tuple(words for _floor, words in reversed(ESTIMATIVE))

# What supports a public attribution at all: at least "likely" and at least moderate confidence.
ATTRIBUTION_THRESHOLD = "likely"

# Basis of a piece of evidence. Overlap with published indicators is the only one the pipeline
# produces today; the cap of each basis bounds what it can support on its own.
OVERLAP = "indicator-overlap"
LOCATION = "intel-location"
CAPS: dict[str, float] = {OVERLAP: OVERLAP_CAP, LOCATION: 0.75}


class Confidence(IntEnum):
    """ICD 203 analytic confidence, ordered so a comparison means "stronger than"."""

    low = 1
    moderate = 2
    high = 3

    def __str__(self) -> str:
        return self.name


# The strongest confidence each basis can reach on its own.
CONFIDENCE_CAPS: dict[str, Confidence] = {
    OVERLAP: Confidence.moderate,
    LOCATION: Confidence.moderate,
}


def likelihood_rank(words: str) -> int:
    """0 (remote) … 6 (almost certain); a ValueError names an unknown expression."""
    try:
        return LIKELIHOOD_ORDER.index(words)
    except ValueError:
        raise ValueError(f"not an ICD 203 expression of likelihood: {words!r}") from None


@dataclass(frozen=True)
class Evidence:
    """One observation for a hypothesis, with where it comes from."""

    text: str
    basis: str  # OVERLAP or LOCATION
    source: str  # the intel feed that said so
    tlp: str
    confidence: int  # the source's own confidence, 0-100
    indicator: str  # "type:value"
    incidents: tuple[str, ...]
    hosts: tuple[str, ...] = ()
    shared_with: int = 0  # other actors the same indicator is tied to


@dataclass(frozen=True)
class Hypothesis:
    kind: str  # "intrusion-set", "threat-actor" or "country"
    subject: str  # the name as the source gives it
    ref: str | None  # STIX id (or location label) the source uses
    probability: float
    likelihood: str
    confidence: Confidence
    evidence_for: tuple[Evidence, ...]
    evidence_against: tuple[str, ...]
    incidents: tuple[str, ...]
    external_id: str | None = None  # e.g. the ATT&CK group id G0007

    def __post_init__(self) -> None:
        if not self.evidence_for:
            raise ValueError(f"hypothesis {self.subject!r} without evidence")
        if self.likelihood != likelihood_words(self.probability):
            raise ValueError(
                f"hypothesis {self.subject!r}: {self.likelihood!r} does not match "
                f"probability {self.probability}"
            )
        bases = {e.basis for e in self.evidence_for}
        cap = max(CAPS[b] for b in bases)
        if self.probability > cap + 1e-9:
            raise ValueError(
                f"hypothesis {self.subject!r}: probability {self.probability} exceeds what "
                f"{', '.join(sorted(bases))} can support ({cap})"
            )
        if self.confidence > max(CONFIDENCE_CAPS[b] for b in bases):
            raise ValueError(
                f"hypothesis {self.subject!r}: {self.confidence} confidence exceeds its evidence"
            )

    @property
    def label(self) -> str:
        """'APT28 (G0007)': the name as the source gives it, with its ATT&CK id if any."""
        return f"{self.subject} ({self.external_id})" if self.external_id else self.subject

    @property
    def band(self) -> tuple[int, int]:
        return BANDS[self.likelihood]

    @property
    def supports_attribution(self) -> bool:
        return self.kind != "country" and (
            likelihood_rank(self.likelihood) >= likelihood_rank(ATTRIBUTION_THRESHOLD)
            and self.confidence >= Confidence.moderate
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "external_id": self.external_id,
            "ref": self.ref,
            "probability": self.probability,
            "likelihood": self.likelihood,
            "band_percent": list(self.band),
            "confidence": str(self.confidence),
            "evidence_for": [
                e.__dict__ | {"incidents": list(e.incidents), "hosts": list(e.hosts)}
                for e in self.evidence_for
            ],
            "evidence_against": list(self.evidence_against),
            "incidents": list(self.incidents),
        }


@dataclass(frozen=True)
class Assessment:
    """The case's attribution record: hypotheses strongest first, and what could not be assessed."""

    case: str
    incidents: tuple[str, ...]
    hypotheses: tuple[Hypothesis, ...]
    gaps: tuple[str, ...] = field(default_factory=tuple)

    @property
    def supported(self) -> tuple[Hypothesis, ...]:
        """Hypotheses strong enough to attribute publicly (often none)."""
        return tuple(h for h in self.hypotheses if h.supports_attribution)

    def strongest(self, kind: str | None = None) -> Hypothesis | None:
        chosen = [h for h in self.hypotheses if kind is None or h.kind == kind]
        return chosen[0] if chosen else None

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "incidents": list(self.incidents),
            "scale": {
                "likelihood": "ICD 203 expressions of likelihood",
                "bands_percent": {k: list(v) for k, v in BANDS.items()},
                "confidence": [c.name for c in Confidence],
            },
            "hypotheses": [h.to_json() for h in self.hypotheses],
            "supports_attribution": bool(self.supported),
            "gaps": list(self.gaps),
        }


def _grade(items: Sequence[Evidence]) -> tuple[float, Confidence]:
    """correlate's rule over pooled evidence: each indicator adds, shared ones less; capped."""
    miss = 1.0
    for e in items:
        miss *= 1.0 - PER_INDICATOR * e.confidence / 100.0 / (1 + e.shared_with)
    score = round(min(OVERLAP_CAP, 1.0 - miss), 3)
    sources = {e.source for e in items}
    level = Confidence.moderate if len(items) >= 2 and len(sources) >= 2 else Confidence.low
    return score, level


def _confidence(level: object) -> Confidence:
    try:
        return Confidence[str(level)]
    except KeyError:
        return Confidence.low


def _actor_hypotheses(incidents: Sequence[Mapping[str, Any]]) -> list[Hypothesis]:
    """Pool the incidents' hypotheses per actor; one piece of evidence per (indicator, source)."""
    pooled: dict[str, dict[tuple[str, str], Evidence]] = defaultdict(dict)
    meta: dict[str, tuple[str, str, str | None]] = {}
    # Each incident's own grading: the case is never judged weaker than one of its incidents.
    floor: dict[str, tuple[float, Confidence]] = {}
    against: dict[str, list[str]] = defaultdict(list)
    for inc in incidents:
        for h in inc.get("attribution") or []:
            ref = str(h.get("stix_id") or h["name"])
            # correlate keeps the source's label "name|ATT&CK id"; split it for the reader.
            name, _, ext = str(h["name"]).partition("|")
            meta[ref] = (str(h["type"]), name, ext.split("|")[0] or None)
            own = (
                min(OVERLAP_CAP, float(h.get("score") or 0.0)),
                min(Confidence.moderate, _confidence(h.get("confidence_level"))),
            )
            old_floor = floor.get(ref, (0.0, Confidence.low))
            floor[ref] = (max(old_floor[0], own[0]), max(old_floor[1], own[1]))
            for e in h.get("evidence_for") or []:
                key = (str(e["indicator"]), str(e["source"]))
                old = pooled[ref].get(key)
                pooled[ref][key] = Evidence(
                    text=f"{e['indicator']} (from {e['source']}, TLP:{str(e['tlp']).upper()}, "
                    f"source confidence {e['confidence']}) was seen in this case",
                    basis=OVERLAP,
                    source=str(e["source"]),
                    tlp=str(e["tlp"]),
                    confidence=int(e["confidence"]),
                    indicator=str(e["indicator"]),
                    incidents=tuple(sorted({*(old.incidents if old else ()), str(inc["id"])})),
                    hosts=tuple(
                        sorted({*(old.hosts if old else ()), *map(str, e.get("hosts") or [])})
                    ),
                    shared_with=int(e.get("shared_with") or 0),
                )
            for text in h.get("evidence_against") or []:
                if text not in against[ref]:
                    against[ref].append(str(text))
    all_ids = [str(i["id"]) for i in incidents]
    raw_names = {f"{m[1]}|{m[2]}": f"{m[1]} ({m[2]})" for m in meta.values() if m[2]}

    def readable(text: str) -> str:
        for raw, nice in raw_names.items():
            text = text.replace(raw, nice)
        return text

    out = []
    for ref, items_by_key in pooled.items():
        items = sorted(items_by_key.values(), key=lambda e: (e.indicator, e.source))
        score, level = _grade(items)
        score, level = max(score, floor[ref][0]), max(level, floor[ref][1])
        seen_in = tuple(sorted({i for e in items for i in e.incidents}))
        extra = []
        if len(seen_in) < len(all_ids):
            extra.append(
                f"{len(all_ids) - len(seen_in)} of the case's {len(all_ids)} incidents show no "
                f"indicator of {meta[ref][1]}"
            )
        out.append(
            Hypothesis(
                kind=meta[ref][0],
                subject=meta[ref][1],
                ref=ref,
                probability=score,
                likelihood=likelihood_words(score),
                confidence=level,
                evidence_for=tuple(items),
                evidence_against=tuple(extra + [readable(t) for t in against[ref]]),
                incidents=seen_in,
                external_id=meta[ref][2],
            )
        )
    return out


def _locations(related: Iterable[str]) -> list[str]:
    """Country names an intel source ties to an indicator (STIX ``location--id|name``, MISP
    ``country|name``); nothing else counts as a location."""
    out = []
    for ref in related or []:
        head, _, rest = str(ref).partition("|")
        if (head.startswith("location--") or head == "country") and rest:
            out.append(rest.split("|")[0])
    return out


def _country_hypotheses(
    incidents: Sequence[Mapping[str, Any]], indicators: pl.DataFrame | None
) -> list[Hypothesis]:
    """Where intel sources place the infrastructure this case's indicators name."""
    if indicators is None or indicators.height == 0:
        return []
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)  # (indicator, source) -> incidents
    for inc in incidents:
        for h in inc.get("attribution") or []:
            for e in h.get("evidence_for") or []:
                seen[(str(e["indicator"]), str(e["source"]))].add(str(inc["id"]))
    if not seen:
        return []
    rows = indicators.select("type", "value", "source", "tlp", "confidence", "related").to_dicts()
    by_country: dict[str, list[Evidence]] = defaultdict(list)
    for r in rows:
        key = (f"{r['type']}:{r['value']}", str(r["source"]))
        if key not in seen:
            continue
        for country in _locations(r["related"] or []):
            by_country[country].append(
                Evidence(
                    text=f"{key[0]} is located in {country} according to {r['source']}",
                    basis=LOCATION,
                    source=str(r["source"]),
                    tlp=str(r["tlp"]),
                    confidence=int(r["confidence"]),
                    indicator=key[0],
                    incidents=tuple(sorted(seen[key])),
                )
            )
    out = []
    for country, items in by_country.items():
        # A source's placement of an address is only as good as its confidence; agreement of two
        # sources is what raises the analytic confidence, never one source repeated.
        miss = 1.0
        for e in items:
            miss *= 1.0 - 0.6 * e.confidence / 100.0
        score = round(min(CAPS[LOCATION], 1.0 - miss), 3)
        sources = {e.source for e in items}
        others = sorted(set(by_country) - {country})
        against = (
            [f"other sources place infrastructure of this case in {', '.join(others)}"]
            if others
            else []
        )
        against.append(
            "where infrastructure is hosted says nothing about who operates it: servers are rented "
            "and compromised worldwide"
        )
        out.append(
            Hypothesis(
                kind="country",
                subject=country,
                ref=None,
                probability=score,
                likelihood=likelihood_words(score),
                confidence=Confidence.moderate if len(sources) >= 2 else Confidence.low,
                evidence_for=tuple(items),
                evidence_against=tuple(against),
                incidents=tuple(sorted({i for e in items for i in e.incidents})),
            )
        )
    return out


def assess(
    case: str, incidents: Sequence[Mapping[str, Any]], indicators: pl.DataFrame | None = None
) -> Assessment:
    """The case's assessment from its incidents (report.json objects) and, if given, the intel
    store (for the locations its sources give to the matched indicators)."""
    hyps = _actor_hypotheses(incidents) + _country_hypotheses(incidents, indicators)
    hyps.sort(key=lambda h: (-h.probability, -int(h.confidence), h.kind, h.subject))
    gaps = []
    if not any(h.kind != "country" for h in hyps):
        gaps.append(
            "No intrusion set or threat actor: no indicator matched in this case is tied to one by "
            "an intel source."
        )
    if not any(h.kind == "country" for h in hyps):
        gaps.append(
            "Country of the infrastructure not assessed: mamori keeps no geolocation data, and no "
            "intel source placed the matched indicators in a country."
        )
    gaps.append(
        "Only passive observation of the operator's own network and published intelligence were "
        "used; no technical attribution beyond indicator overlap (malware analysis, infrastructure "
        "history, human sources) is in this record."
    )
    return Assessment(
        case=case,
        incidents=tuple(str(i["id"]) for i in incidents),
        hypotheses=tuple(hyps),
        gaps=tuple(gaps),
    )
