"""TAXII timestamps: exact round trip at microsecond precision, any fraction length accepted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.share.taxii.timestamps import format_us, parse_us

moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(moments)
def test_round_trip_is_exact(moment):
    us = parse_us(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    assert us == int(moment.timestamp()) * 1_000_000 + moment.microsecond
    assert parse_us(format_us(us)) == us
    assert format_us(us) == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(moments, st.integers(0, 9))
def test_any_fraction_length_orders_like_time(moment, digits):
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    frac = moment.strftime("%f")
    value = text + ("." + (frac + "000")[:digits] if digits else "") + "Z"
    us = parse_us(value)
    whole = int(moment.replace(microsecond=0).timestamp()) * 1_000_000
    assert whole <= us <= whole + moment.microsecond


@pytest.mark.parametrize("bad", ["", "yesterday", "2020-13-01T00:00:00Z", "2020-01-01T25:00Z"])
def test_rejects_what_is_not_a_timestamp(bad):
    with pytest.raises(ValueError):
        parse_us(bad)
