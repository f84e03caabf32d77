"""Attribution hypotheses: which intrusion sets or actors the intelligence links to an incident.

The only evidence this stage has is overlap with published indicators (an address, domain or
fingerprint a source ties to an intrusion set or threat actor). Infrastructure is rented, shared and
reused, so overlap alone never supports more than "roughly even chance" on the intelligence
community's estimative scale, and never more than moderate confidence; a hypothesis says what it
rests on and what speaks against it (the same indicator tied to other actors, other actors' indicators
in the same incident).
"""

from __future__ import annotations

from collections import defaultdict

import polars as pl

ACTOR_TYPES = ("intrusion-set", "threat-actor")
# ICD 203 expressions of likelihood, lower bounds.
ESTIMATIVE = (
    (0.95, "almost certain"),
    (0.80, "very likely"),
    (0.55, "likely"),
    (0.45, "roughly even chance"),
    (0.20, "unlikely"),
    (0.05, "very unlikely"),
    (0.0, "remote"),
)
OVERLAP_CAP = 0.5  # indicator overlap alone: at most "roughly even chance"
PER_INDICATOR = 0.35  # what one indicator at confidence 100, tied to one actor, can contribute


def likelihood_words(p: float) -> str:
    return next(words for floor, words in ESTIMATIVE if p >= floor)


def hypotheses(
    alerts: list[dict[str, object]], indicators: pl.DataFrame
) -> list[dict[str, object]]:
    """Hypotheses for one incident's alerts, strongest first (empty without intel links)."""
    matched: dict[str, set[str]] = defaultdict(set)  # indicator id -> hosts it was seen with
    for a in alerts:
        if a["detector"] == "intel.match":
            _det, indicator, *host = str(a["key"]).split("|")
            matched[indicator].update(h for h in host if h)
    if not matched or indicators.height == 0:
        return []
    rows = indicators.filter(pl.col("id").is_in(list(matched))).to_dicts()
    evidence: dict[str, list[dict[str, object]]] = defaultdict(list)
    names: dict[str, str] = {}
    for ind in rows:
        actors = [r for r in ind["related"] or [] if r.split("--", 1)[0] in ACTOR_TYPES]
        for ref in actors:
            actor_id, _, name = ref.partition("|")
            names[actor_id] = name or actor_id
            evidence[actor_id].append(
                {
                    "indicator": f"{ind['type']}:{ind['value']}",
                    "source": ind["source"],
                    "tlp": ind["tlp"],
                    "confidence": ind["confidence"],
                    "shared_with": len(actors) - 1,
                    "hosts": sorted(matched[ind["id"]]),
                }
            )
    out = []
    for actor_id, items in evidence.items():
        miss = 1.0
        for e in items:
            # An indicator several actors share points at each of them less.
            miss *= 1.0 - PER_INDICATOR * float(e["confidence"]) / 100.0 / (
                1 + int(e["shared_with"])
            )  # type: ignore[arg-type]
        score = min(OVERLAP_CAP, 1.0 - miss)
        sources = {e["source"] for e in items}
        level = "moderate" if len(items) >= 2 and len(sources) >= 2 else "low"
        against = [
            f"{e['indicator']} is also tied to {e['shared_with']} other actor(s)"
            for e in items
            if e["shared_with"]
        ] + [
            f"indicators of {names[other]} were also seen in this incident"
            for other in evidence
            if other != actor_id and names[other] != names[actor_id]
        ]
        against.append("indicator overlap only: infrastructure can be rented, shared or reused")
        out.append(
            {
                "hypothesis": f"{actor_id.split('--')[0]}: {names[actor_id]}",
                "type": actor_id.split("--")[0],
                "name": names[actor_id],
                "stix_id": actor_id,
                "likelihood": likelihood_words(score),
                "score": round(score, 3),
                "confidence_level": level,
                "evidence_for": items,
                "evidence_against": against,
            }
        )
    return sorted(out, key=lambda h: (-float(h["score"]), str(h["name"])))  # type: ignore[arg-type]
