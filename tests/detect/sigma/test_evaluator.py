"""The evaluator: batches of rows give the matches one pass gives; absent tables are no events."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest
from sigma.rule import SigmaRule

from mamori.detect.sigma import CompiledRules, evaluate, load_pipeline
from mamori.detect.sigma import evaluator as ev
from mamori.detect.sigma.compiler import compile_rule

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sigma_helpers import rule_dict, winevt


def compiled(*detections: dict[str, object]) -> CompiledRules:
    units = []
    for n, d in enumerate(detections):
        rule = rule_dict(d)
        rule["id"] = f"6f1d7c2e-0000-4000-8000-0000000001{n:02d}"
        units += compile_rule(SigmaRule.from_dict(rule), f"r{n}.yml", load_pipeline())
    return CompiledRules(tuple(units), tuple(u.rule for u in units), ())


EVENTS = [
    {"IpAddress": "10.0.0.1", "TargetUserName": "a"},
    {"IpAddress": "-", "TargetUserName": "b"},
    {"TargetUserName": "a"},
    {"IpAddress": "10.0.0.4", "TargetUserName": "c"},
    {"IpAddress": "10.0.0.5", "TargetUserName": "A"},
]


def test_batches_give_the_same_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = compiled(
        {"s": {"TargetUserName": "a"}, "condition": "s"},
        {"s": {"IpAddress|startswith": "10."}, "condition": "s"},
        {"k": ["c"], "condition": "k"},
    )
    frames = {"winevt": winevt(EVENTS)}
    whole = evaluate(rules, frames).sort("rule_id", "uid")
    monkeypatch.setattr(ev, "ROWS_PER_BATCH", 2)
    batched = evaluate(rules, frames).sort("rule_id", "uid")
    assert batched.equals(whole)
    assert whole.filter(pl.col("rule_id").str.ends_with("100"))["uid"].to_list() == [
        "e0",
        "e2",
        "e4",
    ]
    # src: the first address the event names; "-" is none.
    assert whole.filter(pl.col("rule_id").str.ends_with("100"))["src"].to_list() == [
        "10.0.0.1",
        None,
        "10.0.0.5",
    ]


def test_absent_or_empty_tables_are_no_events() -> None:
    rules = compiled({"s": {"TargetUserName": "a"}, "condition": "s"})
    assert evaluate(rules, {}).height == 0
    assert evaluate(rules, {"winevt": winevt([])}).height == 0
    assert evaluate(rules, {"winevt": winevt(EVENTS).lazy()}).height == 3
    assert evaluate(rules, {"winevt": winevt(EVENTS)}).schema == pl.Schema(ev.MATCH_SCHEMA)
