"""The claims an attribution statement may make, taken from the assessment and never raised.

Why a separate step between the assessment and the template: a statement for a diplomatic or public
channel is read without the analysis behind it, so each sentence must carry the likelihood and
confidence of the hypothesis it rests on, exactly. Building the claims here (and only copying
words in the template) gives one place to check that nothing is stated stronger than assessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mamori.cases.attribution import (
    ATTRIBUTION_THRESHOLD,
    BANDS,
    Assessment,
    Confidence,
    Hypothesis,
    likelihood_rank,
)

# Below this, a hypothesis is not stated at all: "we assess it unlikely that X..." is an accusation
# by insinuation on a public channel.
MENTION_FLOOR = "roughly even chance"

_KIND_WORDS = {
    "intrusion-set": "the intrusion set tracked as",
    "threat-actor": "the threat actor tracked as",
    "country": "infrastructure located in",
}


@dataclass(frozen=True)
class Claim:
    kind: str
    subject: str
    likelihood: str
    band: tuple[int, int]
    confidence: Confidence
    attributes: bool  # True: says who is responsible; False: an observation short of that
    sentence: str
    basis: tuple[str, ...]  # short descriptions of the evidence (indicator, source, TLP)
    caveats: tuple[str, ...]


@dataclass(frozen=True)
class Statement:
    case: str
    attributable: bool
    headline: str
    claims: tuple[Claim, ...]
    not_claimed: tuple[str, ...]
    tlp: str  # the most restrictive TLP of the evidence cited
    # What attribution would need (the scale section defines terms; it states no judgement).
    threshold: str = (
        f"Attribution is stated only at “{ATTRIBUTION_THRESHOLD}” "
        f"({BANDS[ATTRIBUTION_THRESHOLD][0]}–{BANDS[ATTRIBUTION_THRESHOLD][1]}%) or above, with "
        f"{Confidence.moderate} or {Confidence.high} analytic confidence; indicator overlap alone "
        "cannot reach it."
    )


_TLP_ORDER = ("clear", "white", "green", "amber", "amber+strict", "red")


def _claim(h: Hypothesis) -> Claim:
    who = f"{_KIND_WORDS.get(h.kind, h.kind)} {h.label}"
    lo, hi = h.band
    if h.kind == "country":
        sentence = (
            f"Infrastructure used in this activity is assessed with {h.confidence} confidence to be "
            f"{h.likelihood} ({lo}–{hi}%) located in {h.subject}. This is a statement about where "
            "servers are hosted, not about who operates them."
        )
    elif h.supports_attribution:
        sentence = (
            f"We assess with {h.confidence} confidence that it is {h.likelihood} ({lo}–{hi}%) that "
            f"this activity was conducted by {who}."
        )
    else:
        sentence = (
            f"Technical indicators observed in this activity overlap with indicators published for "
            f"{who}. We assess with {h.confidence} confidence that a link to {h.label} is "
            f"{h.likelihood} ({lo}–{hi}%); this does not amount to attribution."
        )
    basis = tuple(f"{e.indicator} (source {e.source}, TLP:{e.tlp.upper()})" for e in h.evidence_for)
    return Claim(
        kind=h.kind,
        subject=h.label,
        likelihood=h.likelihood,
        band=h.band,
        confidence=h.confidence,
        attributes=h.supports_attribution,
        sentence=sentence,
        basis=basis,
        caveats=h.evidence_against,
    )


def statement(assessment: Assessment) -> Statement:
    """The statement the assessment supports: its claims, or that it supports none."""
    stated = [
        h
        for h in assessment.hypotheses
        if likelihood_rank(h.likelihood) >= likelihood_rank(MENTION_FLOOR)
    ]
    claims = tuple(_claim(h) for h in stated)
    supported = [c for c in claims if c.attributes]
    if supported:
        top = supported[0]
        headline = (
            f"The evidence supports attributing this activity to {top.subject} "
            f"({top.likelihood}, {top.confidence} confidence)."
        )
    else:
        headline = (
            "The evidence available does not support attributing this activity to any actor or "
            "state."
        )
    withheld = [h for h in assessment.hypotheses if h not in stated]
    not_claimed = list(assessment.gaps)
    if withheld:
        not_claimed.append(
            f"{len(withheld)} further hypothesis(es), too weak to state, are left out (they are "
            "in the technical report's attribution assessment)."
        )
    tlps = [e.tlp.lower() for h in stated for e in h.evidence_for]
    tlp = (
        max(tlps, key=lambda t: _TLP_ORDER.index(t) if t in _TLP_ORDER else 0) if tlps else "clear"
    )
    return Statement(
        case=assessment.case,
        attributable=bool(supported),
        headline=headline,
        claims=claims,
        not_claimed=tuple(not_claimed),
        tlp=tlp,
    )
