"""Helpers for the Sigma tests: events as winevt rows, one rule run over them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl
import yaml
from sigma.rule import SigmaRule

from mamori.detect.sigma import CompiledRules, evaluate, load_pipeline
from mamori.detect.sigma.compiler import compile_rule
from mamori.schema import schema_of

SECURITY = {"product": "windows", "service": "security"}


def winevt(
    events: Sequence[Mapping[str, str]],
    *,
    channel: str = "Security",
    event_id: int = 4688,
    provider: str = "Microsoft-Windows-Security-Auditing",
    host: str = "pc1",
) -> pl.DataFrame:
    """``winevt`` rows whose EventData are ``events`` (uid ``e<i>``)."""
    n = len(events)
    base = pl.from_arrow(schema_of("winevt").empty_table())
    rows = pl.DataFrame(
        {
            "ts": [datetime(2026, 1, 1, 0, 0, i % 60, tzinfo=UTC) for i in range(n)],
            "uid": [f"e{i}" for i in range(n)],
            "file": ["t.evtx"] * n,
            "record": list(range(1, n + 1)),
            "host": [host] * n,
            "channel": [channel] * n,
            "provider": [provider] * n,
            "event_id": [event_id] * n,
            "data": [json.dumps(dict(e), ensure_ascii=False) for e in events],
        }
    )
    return pl.concat([base, rows], how="diagonal_relaxed").select(base.columns)  # type: ignore[union-attr]


def rule_dict(
    detection: Mapping[str, Any],
    *,
    logsource: Mapping[str, str] = SECURITY,
    level: str = "medium",
    tags: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "title": "test rule",
        "id": "6f1d7c2e-0000-4000-8000-000000000001",
        "logsource": dict(logsource),
        "detection": dict(detection),
        "level": level,
        "tags": list(tags),
    }


def run_rule(rule: Mapping[str, Any] | str, frames: Mapping[str, pl.DataFrame]) -> list[str]:
    """The uids the rule matches, in order."""
    data = yaml.safe_load(rule) if isinstance(rule, str) else rule
    parsed = SigmaRule.from_dict(dict(data))
    units = compile_rule(parsed, "test.yml", load_pipeline())
    compiled = CompiledRules(tuple(units), (units[0].rule,), ())
    return sorted(evaluate(compiled, frames)["uid"].to_list(), key=lambda u: int(u[1:]))
