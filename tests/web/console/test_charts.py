"""The inline SVG charts: well-formed whatever the names in a report, and true to the numbers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from mamori.web.console import charts

SVG = "{http://www.w3.org/2000/svg}"
names = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


@given(st.lists(st.floats(min_value=0, max_value=1e12), min_size=1, max_size=60), names)
def test_bars_are_proportional_to_the_values(values: list[float], title: str) -> None:
    points = [(f"2015-03-30T14:{n % 60:02d}:00+00:00", v) for n, v in enumerate(values)]
    root = parse(charts.bars(points, title))
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == len(values)
    heights = [float(r.get("height", "0")) for r in rects]
    top = max(values)
    tallest = max(heights)
    for h, v in zip(heights, values, strict=True):
        if top > 0:
            assert abs(h - tallest * v / top) < 0.2  # rounded to a tenth of a pixel
    assert root.find(f"{SVG}title").text == title  # type: ignore[union-attr]


@given(
    st.lists(names, min_size=1, max_size=5),
    st.lists(names, min_size=1, max_size=5),
    st.lists(names, max_size=4),
)
def test_the_entity_graph_is_well_formed_and_names_every_entity(
    attackers: list[str], victims: list[str], domains: list[str]
) -> None:
    inc = {
        "id": "INC-<x>&",
        "entities": {"attackers": attackers, "victims": victims, "domains": domains},
        "alerts": [
            {"detector": "d<&>", "src": a, "dst": v, "domains": domains}
            for a in attackers
            for v in victims
        ],
    }
    root = parse(charts.entity_graph(inc))
    shown = {t.text for g in root.iter(f"{SVG}g") for t in g.findall(f"{SVG}text")}
    assert set(attackers) | set(victims) | set(domains[:8]) <= shown
    if set(victims) - set(attackers):
        assert root.findall(f".//{SVG}line")  # an edge from an attacker to each other victim


def test_severity_bar_splits_by_count() -> None:
    svg = charts.severity_bar({"high": 1, "low": 3}, width=400)
    widths = [float(w) for w in re.findall(r'width="([\d.]+)" height', svg)]
    assert widths == [100.0, 300.0]
    assert "No incidents" in charts.severity_bar({})
