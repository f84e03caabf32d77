"""Durations as written in policy and profile files."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.respond.duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("4h", 14400), ("1d12h", 129600), ("1w", 604800), (600, 600),
     ("600", 600), (3600.0, 3600)],
)  # fmt: skip
def test_parse(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", [0, -1, "0s", "4x", "h", "", "4 h", math.inf, math.nan, 2.5, True, None]
)
def test_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@given(st.integers(1, 10**9))
def test_format_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
