"""The attribution statement never states a likelihood or a confidence above the assessment's."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from mamori.cases import attribution
from mamori.cases.attribution import (
    LIKELIHOOD_ORDER,
    OVERLAP,
    Assessment,
    Confidence,
    Evidence,
    Hypothesis,
    likelihood_rank,
)
from mamori.cases.reports import render_html
from mamori.cases.reports.statement import MENTION_FLOOR, statement
from mamori.cases.reports.view import CaseView
from mamori.correlate.attribution import likelihood_words

# A basis stronger than indicator overlap (say, corroborated malware analysis), so the property is
# exercised over the whole scale, including statements that do attribute.
STRONG = "corroborated"

VIEW = CaseView(
    id="CASE-0000000001",
    title="test",
    status="open",
    owner="ann",
    opened="2024-01-01T00:00:00+00:00",
    closed=None,
    close_reason=None,
    incidents=[
        {
            "id": "INC-000000000001",
            "title": "beaconing",
            "severity": "high",
            "techniques": ["T1071.001"],
            "entities": {"attackers": ["10.0.0.1"], "victims": [], "domains": []},
            "first_seen": "2024-01-01T00:00:00+00:00",
            "last_seen": "2024-01-01T01:00:00+00:00",
            "alerts": [],
        }
    ],
)


@st.composite
def hypotheses(draw: st.DrawFn) -> Hypothesis:
    strong = draw(st.booleans())
    basis = STRONG if strong else OVERLAP
    p = draw(st.floats(0.0, 0.99 if strong else attribution.OVERLAP_CAP))
    top = Confidence.high if strong else Confidence.moderate
    conf = draw(st.sampled_from([c for c in Confidence if c <= top]))
    kind = draw(st.sampled_from(["intrusion-set", "threat-actor", "country"]))
    name = draw(st.sampled_from(["APT28", "FIN7", "Ruritania", "Group 5", "Lazarus"]))
    tlp = draw(st.sampled_from(["clear", "green", "amber", "red"]))
    ev = Evidence("seen", basis, "feed", tlp, 80, "ip:198.51.100.1", ("INC-000000000001",))
    return Hypothesis(kind, name, None, p, likelihood_words(p), conf, (ev,), ("caveat",), ())


class _Text(HTMLParser):
    """Visible text outside the scale section (which defines terms and states no judgement),
    and every element that carries a judgement."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # inside <section class="scale">
        self.stack: list[bool] = []
        self.text: list[str] = []
        self.judgements: list[dict[str, str | None]] = []
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            scale = a.get("class") == "scale"
            self.stack.append(scale)
            self.depth += scale
        self.in_style = tag in ("style", "title")
        if "data-likelihood" in a:
            self.judgements.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self.stack:
            self.depth -= self.stack.pop()
        self.in_style = False

    def handle_data(self, data: str) -> None:
        if not self.depth and not self.in_style:
            self.text.append(data)


_TERMS = re.compile("|".join(sorted(map(re.escape, LIKELIHOOD_ORDER), key=len, reverse=True)))
_CONF = re.compile(r"\b(low|moderate|high) confidence\b")


@mock.patch.dict(attribution.CAPS, {STRONG: 0.99})
@mock.patch.dict(attribution.CONFIDENCE_CAPS, {STRONG: Confidence.high})
@given(st.lists(hypotheses(), max_size=5, unique_by=lambda h: h.label))
def test_statement_never_exceeds_the_assessment(hyps: list[Hypothesis]) -> None:
    hyps.sort(key=lambda h: -h.probability)
    assessment = Assessment("CASE-0000000001", ("INC-000000000001",), tuple(hyps))
    page = _Text()
    page.feed(render_html("attribution", VIEW, assessment=assessment))
    by_subject = {h.label: h for h in hyps}
    # Every judgement carries exactly its hypothesis's likelihood and confidence.
    for j in page.judgements:
        h = by_subject[str(j["data-subject"])]
        assert j["data-likelihood"] == h.likelihood and j["data-confidence"] == str(h.confidence)
    stated = {str(j["data-subject"]) for j in page.judgements}
    assert stated == {
        h.label for h in hyps if likelihood_rank(h.likelihood) >= likelihood_rank(MENTION_FLOOR)
    }
    # Nowhere in the text is a likelihood or confidence stronger than the assessment's strongest.
    text = " ".join(" ".join(page.text).split())
    top_l = max((likelihood_rank(h.likelihood) for h in hyps), default=-1)
    top_c = max((h.confidence for h in hyps), default=0)
    for term in _TERMS.findall(text):
        assert likelihood_rank(term) <= top_l, (term, text)
    for word in _CONF.findall(text):
        assert Confidence[word] <= top_c, (word, text)
    # Attribution is claimed exactly when a hypothesis supports it.
    s = statement(assessment)
    assert s.attributable == any(h.supports_attribution for h in hyps)
    assert ("does not support attributing" in text) == (not s.attributable)
    if s.attributable:
        top = next(h for h in hyps if h.supports_attribution)
        assert f"attributing this activity to {top.label} ({top.likelihood}" in text
