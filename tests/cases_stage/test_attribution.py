"""The case's attribution assessment: pooled from its incidents, never stronger than its evidence."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.cases.attribution import (
    BANDS,
    LIKELIHOOD_ORDER,
    LOCATION,
    OVERLAP,
    Confidence,
    Evidence,
    Hypothesis,
    assess,
    likelihood_rank,
)
from mamori.correlate.attribution import ESTIMATIVE, OVERLAP_CAP, likelihood_words


def _evidence(indicator: str, source: str, confidence: int = 80, shared: int = 0) -> dict[str, Any]:
    return {
        "indicator": indicator,
        "source": source,
        "tlp": "green",
        "confidence": confidence,
        "shared_with": shared,
        "hosts": ["10.0.0.5"],
    }


def _hyp(name: str, items: list[dict[str, Any]], score: float, level: str) -> dict[str, Any]:
    """An incident-level hypothesis as correlate writes it into report.json."""
    return {
        "hypothesis": f"intrusion-set: {name}",
        "type": "intrusion-set",
        "name": name,
        "stix_id": f"intrusion-set--{abs(hash(name)) % 10**8:08d}",
        "likelihood": likelihood_words(score),
        "score": score,
        "confidence_level": level,
        "evidence_for": items,
        "evidence_against": [
            "indicator overlap only: infrastructure can be rented, shared or reused"
        ],
    }


def _incident(n: int, attribution: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"INC-{n:012x}", "attribution": attribution}


def test_two_sources_across_incidents_raise_confidence_to_moderate_but_not_above() -> None:
    a = _hyp("APT28|G0007", [_evidence("ip:198.51.100.7", "feed-a")], 0.28, "low")
    b = _hyp("APT28|G0007", [_evidence("domain:evil.example", "feed-b")], 0.28, "low")
    result = assess("CASE-1", [_incident(1, [a]), _incident(2, [b]), _incident(3, [])])
    [h] = result.hypotheses
    assert (h.subject, h.external_id, h.label) == ("APT28", "G0007", "APT28 (G0007)")
    assert h.confidence == Confidence.moderate  # two indicators, two independent sources
    assert 0.28 < h.probability <= OVERLAP_CAP  # pooled evidence adds up, but overlap is capped
    assert h.likelihood == likelihood_words(h.probability)
    assert h.incidents == ("INC-000000000001", "INC-000000000002")
    assert any("1 of the case's 3 incidents" in x for x in h.evidence_against)
    assert not h.supports_attribution and not result.supported


def test_the_same_indicator_in_several_incidents_counts_once() -> None:
    ev = _evidence("ip:198.51.100.7", "feed-a")
    h1 = _hyp("APT1", [ev], 0.28, "low")
    one = assess("C", [_incident(1, [h1])]).hypotheses[0]
    many = assess("C", [_incident(n, [h1]) for n in range(5)]).hypotheses[0]
    assert many.probability == one.probability and many.confidence == Confidence.low
    assert len(many.evidence_for) == 1 and len(many.evidence_for[0].incidents) == 5


def test_no_intel_link_means_no_hypothesis_and_the_gap_is_said() -> None:
    result = assess("C", [_incident(1, []), _incident(2, [])])
    assert result.hypotheses == ()
    assert any("No intrusion set or threat actor" in g for g in result.gaps)
    assert any("Country of the infrastructure not assessed" in g for g in result.gaps)


def test_country_only_where_an_intel_source_places_the_indicator() -> None:
    h = _hyp("APT28|G0007", [_evidence("ip:198.51.100.7", "feed-a")], 0.28, "low")
    indicators = pl.DataFrame(
        {
            "type": ["ip", "ip", "domain"],
            "value": ["198.51.100.7", "203.0.113.9", "evil.example"],
            "source": ["feed-a", "feed-a", "feed-a"],
            "tlp": ["green", "green", "green"],
            "confidence": [90, 90, 90],
            "related": [
                ["intrusion-set--1|APT28", "location--aa|Ruritania"],
                ["location--bb|Freedonia"],  # not seen in the case: must not appear
                ["location--cc|Sylvania"],  # not seen in the case either
            ],
        }
    )
    result = assess("C", [_incident(1, [h])], indicators)
    [country] = [x for x in result.hypotheses if x.kind == "country"]
    assert country.subject == "Ruritania" and country.confidence == Confidence.low
    assert country.evidence_for[0].basis == LOCATION
    assert any("says nothing about who operates it" in x for x in country.evidence_against)
    assert not country.supports_attribution  # where servers are is not who did it
    assert not any("Country of the infrastructure not assessed" in g for g in result.gaps)
    # Without the intel store, the country is not guessed.
    assert not [x for x in assess("C", [_incident(1, [h])]).hypotheses if x.kind == "country"]


def test_an_overconfident_hypothesis_cannot_be_built() -> None:
    ev = Evidence("x", OVERLAP, "feed", "clear", 100, "ip:1.2.3.4", ("INC-1",))
    with pytest.raises(ValueError, match="exceeds what indicator-overlap can support"):
        Hypothesis("intrusion-set", "X", None, 0.9, "very likely", Confidence.low, (ev,), (), ())
    with pytest.raises(ValueError, match="confidence exceeds its evidence"):
        Hypothesis("intrusion-set", "X", None, 0.3, "unlikely", Confidence.high, (ev,), (), ())
    with pytest.raises(ValueError, match="does not match"):
        Hypothesis("intrusion-set", "X", None, 0.3, "likely", Confidence.low, (ev,), (), ())


def test_scale_is_icd_203_in_order() -> None:
    assert LIKELIHOOD_ORDER[0] == "remote" and LIKELIHOOD_ORDER[-1] == "almost certain"
    assert set(LIKELIHOOD_ORDER) == set(BANDS) == {w for _f, w in ESTIMATIVE}
    lows = [BANDS[w][0] for w in LIKELIHOOD_ORDER]
    assert lows == sorted(lows)
    with pytest.raises(ValueError, match="not an ICD 203"):
        likelihood_rank("probably")


_evidence_st = st.builds(
    _evidence,
    indicator=st.sampled_from(["ip:198.51.100.7", "ip:203.0.113.1", "domain:a.example"]),
    source=st.sampled_from(["feed-a", "feed-b", "feed-c"]),
    confidence=st.integers(0, 100),
    shared=st.integers(0, 3),
)
_hyp_st = st.builds(
    _hyp,
    name=st.sampled_from(["APT1", "APT28|G0007", "FIN7|G0046"]),
    items=st.lists(_evidence_st, min_size=1, max_size=4),
    score=st.floats(0, 0.5),
    level=st.sampled_from(["low", "moderate"]),
)


@given(st.lists(st.lists(_hyp_st, max_size=3), min_size=1, max_size=4))
def test_pooling_never_exceeds_overlap_and_never_weakens_an_incident(
    per_incident: list[list[dict[str, Any]]],
) -> None:
    incidents = [_incident(n, hyps) for n, hyps in enumerate(per_incident)]
    result = assess("C", incidents)
    by_name = {h.label: h for h in result.hypotheses}
    for h in result.hypotheses:
        assert h.probability <= OVERLAP_CAP and h.confidence <= Confidence.moderate
        assert h.likelihood == likelihood_words(h.probability)
        assert h.evidence_for and set(h.incidents) <= {str(i["id"]) for i in incidents}
    for hyps in per_incident:
        for raw in hyps:
            name, _, ext = raw["name"].partition("|")
            pooled = by_name[f"{name} ({ext})" if ext else name]
            assert pooled.probability >= min(raw["score"], OVERLAP_CAP) - 1e-9
            assert pooled.confidence >= Confidence[raw["confidence_level"]]
    # strongest first
    probs = [h.probability for h in result.hypotheses]
    assert probs == sorted(probs, reverse=True)
