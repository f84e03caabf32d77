"""Stream prefixes used for recognition agree with full reassembly, whatever the arrival order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mamori.flows.payload import _prefix, _reassemble


def _reference(parts: list[tuple[int, bool, int, bytes]], side: bool, limit: int) -> bytes:
    out = bytearray()
    for seg in _reassemble([x for x in parts if x[1] == side], True):
        if seg.gap or len(out) >= limit:
            break
        out += seg.data
    return bytes(out[:limit])


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[int, bool, int, bytes]]:
    """Segments of two directions cut from random streams, near the 32-bit wrap, then
    optionally duplicated, dropped or reordered."""
    parts = []
    for side in (True, False):
        base = draw(st.sampled_from([0, 1000, 2**32 - 5, 2**31]))
        data = draw(st.binary(min_size=0, max_size=60))
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
        pos = 0
        for cut in [*cuts, len(data)]:
            parts.append((len(parts), side, (base + pos) & 0xFFFFFFFF, data[pos:cut]))
            pos = cut
    if draw(st.booleans()):
        parts = draw(st.permutations(parts))
    if parts and draw(st.booleans()):
        parts.append(draw(st.sampled_from(parts)))  # a retransmission
    if len(parts) > 2 and draw(st.booleans()):
        del parts[draw(st.integers(0, len(parts) - 1))]  # a hole
    return [(ts, o, seq, d) for ts, (_t, o, seq, d) in enumerate(parts)]


@given(streams(), st.sampled_from([1, 7, 32, 1024]))
def test_prefix_equals_reassembled_stream(parts, limit: int) -> None:
    for side in (True, False):
        assert _prefix(parts, side, limit) == _reference(parts, side, limit)
