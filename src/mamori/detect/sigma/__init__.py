"""Sigma rules over the lake's log tables, compiled to vectorised expressions.

``compile_rules(paths)`` loads SigmaHQ rules (pySigma), maps them through the pipelines of
``pipelines/*.yml`` and compiles each to Polars expressions; ``evaluate(compiled, frames)`` runs
them all over the lake's tables and returns one row per match.
"""

from mamori.detect.sigma.compiler import CompiledRule, CompiledRules, RuleInfo, compile_rules
from mamori.detect.sigma.evaluator import MATCH_SCHEMA, evaluate
from mamori.detect.sigma.loader import Unusable
from mamori.detect.sigma.pipeline import load_pipeline

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
