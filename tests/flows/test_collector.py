"""The collector policy of a capture is undone after it, even when the capture fails."""

from __future__ import annotations

import gc

import pytest

from mamori.flows.collector import YOUNG_THRESHOLD, rare_collection


def test_policy_holds_inside_and_is_restored_after() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with rare_collection():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > frozen  # the startup heap is out of the collector's sight
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_restored_when_the_capture_raises() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), rare_collection():
        raise RuntimeError("capture failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_made_during_a_capture_are_still_collected() -> None:
    class Node:
        pass

    with rare_collection():
        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        del a, b
        assert gc.collect() >= 2
