"""The STIX pattern parser: what it expands a pattern to, and what it refuses.

Property tests build patterns from a small grammar (comparisons, ``IN`` lists, ``AND`` and ``OR``
of comparisons, parentheses, several observations, qualifiers) together with the alternatives
each must expand to, stated independently of the parser; and feed it arbitrary text, which it
must parse or refuse as ``PatternError``/``Unmatchable``, never raise anything else.
"""

from __future__ import annotations

from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.intel.pattern import (
    MAX_ALTERNATIVES,
    MAX_DEPTH,
    Comparison,
    PatternError,
    Unmatchable,
    parse,
)

PATHS = [
    "ipv4-addr:value",
    "domain-name:value",
    "file:hashes.'SHA-256'",
    "network-traffic:dst_port",
]
_value = st.one_of(
    st.text(alphabet="abcxyz.-/'\\ 019", max_size=12),
    st.integers(min_value=0, max_value=65535),
)


def _literal(v: str | int) -> str:
    if isinstance(v, int):
        return str(v)
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _parsed(v: str | int) -> str | float:
    return float(v) if isinstance(v, int) else v


@st.composite
def comparison(draw: st.DrawFn) -> tuple[str, list[tuple[Comparison, ...]]]:
    """A comparison's text and its alternatives (``IN`` is one alternative per value)."""
    path = draw(st.sampled_from(PATHS))
    negated = draw(st.booleans())
    not_ = " NOT" if negated else ""
    if draw(st.booleans()):
        values = draw(st.lists(_value, min_size=1, max_size=3))
        text = f"{path}{not_} IN ({', '.join(_literal(v) for v in values)})"
        return text, [(Comparison(path, "=", _parsed(v), negated),) for v in values]
    op = draw(st.sampled_from(["=", "!=", "<", ">=", "LIKE", "MATCHES"]))
    v = draw(_value)
    return f"{path}{not_} {op} {_literal(v)}", [(Comparison(path, op, _parsed(v), negated),)]


def _expression(leaf: st.SearchStrategy) -> st.SearchStrategy:
    """AND/OR trees over ``leaf``, each node with the alternatives it stands for: OR joins the
    lists, AND takes every pair (the disjunctive normal form). A bare OR under an AND is
    parenthesised, as AND binds tighter; anything else may or may not be."""

    def grow(children: st.SearchStrategy) -> st.SearchStrategy:
        def join(parts: tuple, word: str, paren: bool) -> tuple[str, list, str]:
            (lt, la, lk), (rt, ra, rk) = parts
            if word == "AND":
                lt, rt = (f"({t})" if k == "OR" else t for t, k in ((lt, lk), (rt, rk)))
            text = f"{lt} {word} {rt}"
            alts = la + ra if word == "OR" else [a + b for a, b in product(la, ra)]
            return (f"({text})", alts, "atom") if paren else (text, alts, word)

        return st.builds(
            join, st.tuples(children, children), st.sampled_from(["AND", "OR"]), st.booleans()
        )

    atoms = leaf.map(lambda case: (case[0], case[1], "atom"))
    return st.recursive(atoms, grow, max_leaves=6).map(lambda case: case[:2])


@st.composite
def pattern(draw: st.DrawFn) -> tuple[str, list[tuple[Comparison, ...]]]:
    """One or more observations ``[...]`` joined by OR, some qualified, some in parentheses."""
    observations = draw(st.lists(_expression(comparison()), min_size=1, max_size=3))
    parts, alts = [], []
    for text, a in observations:
        obs = f"[{text}]"
        obs += draw(st.sampled_from(["", " WITHIN 300 SECONDS", " REPEATS 2 TIMES"]))
        parts.append(obs)
        alts += a
    text = " OR ".join(parts)
    return (f"({text})" if draw(st.booleans()) else text), alts


@given(pattern())
def test_a_pattern_expands_to_its_alternatives(case: tuple[str, list]) -> None:
    text, expected = case
    if len(expected) > MAX_ALTERNATIVES:
        with pytest.raises(Unmatchable):
            parse(text)
        return
    assert parse(text) == expected


@given(st.lists(_expression(comparison()), min_size=2, max_size=3))
def test_observations_joined_by_and_are_unmatchable(observations: list) -> None:
    text = " AND ".join(f"[{t}]" for t, _ in observations)
    with pytest.raises(Unmatchable, match="several observations"):
        parse(text)


@given(st.text(alphabet="[]()'\\=<>!:,.-*_ aAnNdDoOrRiIeEpv4lu019\u00e9", max_size=80))
def test_any_text_parses_or_is_refused(text: str) -> None:
    try:
        out = parse(text)
    except (PatternError, Unmatchable) as exc:
        assert "\n" not in str(exc)  # one line a skip reason can carry
    else:
        assert all(isinstance(c, Comparison) for conj in out for c in conj)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000])
def test_deep_nesting_is_refused_as_syntax(depth: int) -> None:
    """Nesting no producer writes: refused with a reason, not by Python's recursion limit
    (before the limit, 5 000 parentheses raised RecursionError out of the importer)."""
    inner = "ipv4-addr:value = '192.0.2.1'"
    for text in (
        "[" + "(" * depth + inner + ")" * depth + "]",
        "(" * depth + f"[{inner}]" + ")" * depth,
    ):
        with pytest.raises(PatternError, match="nested deeper"):
            parse(text)


def test_nesting_within_the_limit_parses() -> None:
    depth = MAX_DEPTH - 2
    inner = "ipv4-addr:value = '192.0.2.1'"
    got = parse("(" + "[" + "(" * depth + inner + ")" * depth + "]" + ")")
    assert got == [(Comparison("ipv4-addr:value", "=", "192.0.2.1"),)]


def test_an_expansion_too_large_is_refused_before_it_is_built() -> None:
    """``AND`` of two 200-value ``IN`` lists is 40 000 alternatives: refused from the counts."""
    values = ", ".join(f"'192.0.2.{i % 250}'" for i in range(200))
    text = f"[ipv4-addr:value IN ({values}) AND domain-name:value IN ({values})]"
    with pytest.raises(Unmatchable, match="too many alternatives"):
        parse(text)
