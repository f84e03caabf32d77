"""Sigma rule files and folders into pySigma rules, each unreadable one kept with its reason."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaRuleLocation
from sigma.rule import SigmaRule
from sigma.rule.base import SigmaYAMLLoader

RULE_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class Unusable:
    """A rule (or rule file) that cannot run, and why; ``rule_id`` is empty if none was read."""

    path: str
    rule_id: str
    title: str
    reason: str


def rule_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Every rule file under ``paths`` (folders recursively, sorted: runs are reproducible)."""
    for p in paths:
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.suffix in RULE_SUFFIXES and f.is_file())
        else:
            yield p


def load_rules(paths: Iterable[Path]) -> tuple[list[tuple[Path, SigmaRule]], list[Unusable]]:
    """Parse every file; pySigma's own errors (bad YAML, unknown modifier, bad condition...) and
    rule kinds mamori does not run (correlations, filters) become :class:`Unusable` entries."""
    rules: list[tuple[Path, SigmaRule]] = []
    bad: list[Unusable] = []
    for f in rule_files(paths):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            bad.append(Unusable(str(f), "", "", f"cannot read: {exc}"))
            continue
        try:
            # pySigma's from_yaml reads with the pure-Python YAML parser; its own C loader (which
            # also refuses duplicate keys) reads a SigmaHQ checkout about ten times faster.
            docs = list(yaml.load_all(text, Loader=SigmaYAMLLoader))  # the C *safe* loader
            collection = SigmaCollection.from_dicts(
                # Correlations are reported, not run: their rule references need not resolve.
                docs,
                collect_errors=True,
                source=SigmaRuleLocation(f),
                resolve_references=False,
            )
        except Exception as exc:  # pySigma raises many error types; each is the file's problem
            bad.append(Unusable(str(f), "", "", f"{type(exc).__name__}: {exc}"))
            continue
        if collection.errors and not collection.rules:
            reason = "; ".join(str(e) for e in collection.errors)
            bad.append(Unusable(str(f), "", "", reason))
        for rule in collection.rules:
            rule_id = str(getattr(rule, "id", "") or "")
            title = str(getattr(rule, "title", "") or "")
            if not isinstance(rule, SigmaRule):
                kind = type(rule).__name__.removeprefix("Sigma").removesuffix("Rule").lower()
                bad.append(Unusable(str(f), rule_id, title, f"{kind} rules are not supported"))
            elif rule.errors:
                reason = "; ".join(str(e) for e in rule.errors)
                bad.append(Unusable(str(f), rule_id, title, reason))
            else:
                rules.append((f, rule))
    return rules, bad
