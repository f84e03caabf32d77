"""Sigma rules over the lake's log tables, compiled to vectorised expressions.

``compile_rules(paths)`` loads SigmaHQ rules (pySigma), maps them through the pipelines of
``pipelines/*.yml`` and compiles each to Polars expressions; ``evaluate(compiled, frames)`` runs
them all over the lake's tables and returns one row per match.

The names are loaded on first use: importing pySigma costs ~80 ms, which every patrol and every
command that lists the detectors paid at start even with no rules (a capture-only patrol).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mamori.detect.sigma.compiler import CompiledRule, CompiledRules, RuleInfo, compile_rules
    from mamori.detect.sigma.evaluator import MATCH_SCHEMA, evaluate
    from mamori.detect.sigma.loader import Unusable
    from mamori.detect.sigma.pipeline import load_pipeline

_WHERE = {
    "CompiledRule": "compiler",
    "CompiledRules": "compiler",
    "RuleInfo": "compiler",
    "compile_rules": "compiler",
    "MATCH_SCHEMA": "evaluator",
    "evaluate": "evaluator",
    "Unusable": "loader",
    "load_pipeline": "pipeline",
}

__all__ = [
    "MATCH_SCHEMA",
    "CompiledRule",
    "CompiledRules",
    "RuleInfo",
    "Unusable",
    "compile_rules",
    "evaluate",
    "load_pipeline",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
