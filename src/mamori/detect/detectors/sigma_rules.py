"""Sigma: the community's detection rules over the host logs in the lake.

Every rule under the configured paths (a SigmaHQ checkout, a team's own rules) is compiled once
per run to Polars expressions (``detect.sigma``) and evaluated over the log tables together; each
rule's matches on one host become one alert carrying the rule's title, ATT&CK techniques and level,
with the matching records' uids as evidence. Rules that cannot be compiled are logged with the
reason (``mamori sigma check`` lists them) and the rest run.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from mamori.detect.base import Params, alerts, detector, empty_alerts
from mamori.detect.sigma.levels import LEVELS

if TYPE_CHECKING:
    from mamori.detect.sigma.compiler import CompiledRules

# The rule compiler (pySigma) is imported by the functions that compile or run rules, so a run
# without rules never loads it (mamori.detect.sigma says what that saves).

log = logging.getLogger(__name__)

TABLES = ("winevt", "syslog", "jsonlog")
ENV = "MAMORI_SIGMA_RULES"
# A Sigma level is the author's mix of confidence and impact; mamori's severities have no
# "informational", and a rule's level is the best confidence there is without more context.
SEVERITY = {
    "informational": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}
CONFIDENCE = {"informational": 0.2, "low": 0.35, "medium": 0.5, "high": 0.7, "critical": 0.85}


def _env_rules() -> tuple[str, ...]:
    return tuple(p for p in os.environ.get(ENV, "").split(os.pathsep) if p)


@dataclass(frozen=True)
class SigmaParams(Params):
    # Rule files or folders (a SigmaHQ checkout's rules/windows, ...). Default: the paths in
    # $MAMORI_SIGMA_RULES (separated like PATH), or none.
    rules: tuple[str, ...] = field(default_factory=_env_rules)
    # Rules below this level do not run: informational, low, medium, high or critical.
    min_level: str = "low"
    # Extra pipeline files (docs/sigma.md): a site's own channels, datasets or field names.
    pipelines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_level not in LEVELS:
            raise ValueError(f"min_level {self.min_level!r} not one of {', '.join(LEVELS)}")


def _stamp(paths: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    """Paths with the newest modification time of the rule files under them: a rule edited in
    place (which leaves its folder's time alone) is compiled again."""
    from mamori.detect.sigma.loader import rule_files

    out = []
    for p in paths:
        try:
            times = [f.stat().st_mtime for f in rule_files([Path(p)])]
            out.append((p, max(times, default=Path(p).stat().st_mtime)))
        except OSError:
            out.append((p, -1.0))
    return tuple(out)


@lru_cache(maxsize=4)
def _compiled(
    rules: tuple[tuple[str, float], ...], pipelines: tuple[tuple[str, float], ...]
) -> CompiledRules:
    from mamori.detect.sigma.compiler import compile_rules
    from mamori.detect.sigma.pipeline import load_pipeline

    pipeline = load_pipeline(Path(p) for p, _ in pipelines)
    compiled = compile_rules([Path(p) for p, _ in rules], pipeline)
    if compiled.unusable:
        log.info(
            "sigma: %d of %d rules cannot run (mamori sigma check lists why)",
            len(compiled.unusable),
            compiled.total,
        )
    return compiled


def compiled_for(p: SigmaParams) -> CompiledRules:
    """The rule set of these parameters, compiled once per process while the files are unchanged,
    keeping only rules at or above ``min_level``."""
    from mamori.detect.sigma.compiler import CompiledRules

    compiled = _compiled(_stamp(p.rules), _stamp(p.pipelines))
    floor = LEVELS.index(p.min_level)
    keep = tuple(c for c in compiled.compiled if LEVELS.index(c.rule.level) >= floor)
    return CompiledRules(keep, compiled.rules, compiled.unusable)


def _every_technique() -> tuple[str, ...]:
    """A Sigma rule may carry any ATT&CK technique: every one in mamori's ATT&CK table."""
    table = resources.files("mamori.correlate").joinpath("attack.json").read_text()
    return tuple(sorted(json.loads(table)["techniques"]))


@detector("sigma", reads=TABLES, key=("host",), attack=_every_technique(), params=SigmaParams)
def sigma_rules(
    winevt: pl.LazyFrame, syslog: pl.LazyFrame, jsonlog: pl.LazyFrame, p: SigmaParams
) -> pl.LazyFrame:
    """Each Sigma rule's matches on one host: one alert, the records as evidence."""
    if not p.rules:
        return empty_alerts().lazy()
    from mamori.detect.sigma.evaluator import evaluate

    compiled = compiled_for(p)
    matches = evaluate(compiled, {"winevt": winevt, "syslog": syslog, "jsonlog": jsonlog})
    if matches.height == 0:
        return empty_alerts().lazy()
    parts = []
    for table, rows in matches.group_by("table", maintain_order=True):
        found = (
            rows.lazy()
            .sort("ts")
            .group_by("rule_id", "host", maintain_order=True)
            .agg(
                pl.col("title").first(),
                pl.col("level").first(),
                pl.col("techniques").first(),
                pl.col("ts").min().alias("first_seen"),
                pl.col("ts").max().alias("last_seen"),
                pl.len().alias("n"),
                pl.col("uid").alias("uids"),
                pl.col("src").drop_nulls().first(),
                pl.col("dst").drop_nulls().first(),
            )
        )
        parts.append(
            alerts(
                found,
                detector_id="sigma",
                techniques=pl.col("techniques"),
                severity=pl.col("level").replace_strict(SEVERITY, return_dtype=pl.String),
                confidence=pl.col("level").replace_strict(CONFIDENCE, return_dtype=pl.Float64),
                summary=pl.format(
                    "Sigma: {} ({} event(s) on {})",
                    pl.col("title"),
                    pl.col("n"),
                    pl.col("host").fill_null("an unnamed host"),
                ),
                src=pl.col("src"),
                # The machine that logged the event is where it happened (as the other host-log
                # detectors say), unless the event names a destination address.
                dst=pl.coalesce(pl.col("dst"), pl.col("host")),
                first_seen=pl.col("first_seen"),
                last_seen=pl.col("last_seen"),
                count=pl.col("n"),
                evidence_table=str(table[0]),
                evidence=pl.col("uids"),
                key=pl.format("{}|{}", pl.col("rule_id"), pl.col("host").fill_null("")),
            )
        )
    return pl.concat(parts)
