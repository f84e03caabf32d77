"""The incidents of a patrol report (docs/report.md), as the respond stage reads them.

Only the fields profiles filter on and decisions take targets from are read; a report that lacks
them is refused with the file, the incident and the field named, never half-read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEVERITIES = ("low", "medium", "high", "critical")


class ReportError(ValueError):
    """A report the respond stage cannot read; the message names file, record and reason."""


@dataclass(frozen=True)
class Alert:
    detector: str
    techniques: tuple[str, ...]
    severity: str
    confidence: float
    summary: str
    src: str | None
    dst: str | None


@dataclass(frozen=True)
class Incident:
    id: str
    title: str
    severity: str
    confidence: float
    techniques: tuple[str, ...]
    attackers: tuple[str, ...]
    victims: tuple[str, ...]
    domains: tuple[str, ...]
    alerts: tuple[Alert, ...]


def load_report(path: str | Path) -> list[Incident]:
    source = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ReportError(f"{source}: cannot read the file ({e.strerror or e})") from e
    except json.JSONDecodeError as e:
        raise ReportError(f"{source}: not JSON (line {e.lineno}: {e.msg})") from e
    return read_incidents(data, source)


def read_incidents(report: Mapping[str, Any], source: str = "<report>") -> list[Incident]:
    if not isinstance(report, Mapping) or not isinstance(report.get("incidents"), list):
        raise ReportError(f"{source}: not a patrol report (no incidents[] list)")
    return [
        _incident(item, f"{source}: incidents[{n}]") for n, item in enumerate(report["incidents"])
    ]


def _incident(item: Any, where: str) -> Incident:
    if not isinstance(item, Mapping):
        raise ReportError(f"{where}: must be an object")
    ident = _str(item, "id", where)
    where = f"{where} ({ident})"
    ents = item.get("entities", {})
    if not isinstance(ents, Mapping):
        raise ReportError(f"{where}: entities must be an object")
    alerts = item.get("alerts", [])
    if not isinstance(alerts, list):
        raise ReportError(f"{where}: alerts must be a list")
    return Incident(
        id=ident,
        title=str(item.get("title", "")),
        severity=_severity(item, where),
        confidence=_confidence(item, where),
        techniques=_strs(item, "techniques", where),
        attackers=_strs(ents, "attackers", f"{where}: entities"),
        victims=_strs(ents, "victims", f"{where}: entities"),
        domains=_strs(ents, "domains", f"{where}: entities"),
        alerts=tuple(_alert(a, f"{where}: alerts[{k}]") for k, a in enumerate(alerts)),
    )


def _alert(item: Any, where: str) -> Alert:
    if not isinstance(item, Mapping):
        raise ReportError(f"{where}: must be an object")
    src, dst = item.get("src"), item.get("dst")
    for key, value in (("src", src), ("dst", dst)):
        if value is not None and not isinstance(value, str):
            raise ReportError(f"{where}: {key} must be a string or null")
    return Alert(
        detector=_str(item, "detector", where),
        techniques=_strs(item, "techniques", where),
        severity=_severity(item, where),
        confidence=_confidence(item, where),
        summary=str(item.get("summary", "")),
        src=src or None,
        dst=dst or None,
    )


def _str(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise ReportError(f"{where}: {key} must be a non-empty string")
    return value


def _strs(item: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ReportError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _severity(item: Mapping[str, Any], where: str) -> str:
    value = item.get("severity")
    if value not in SEVERITIES:
        raise ReportError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
    return str(value)


def _confidence(item: Mapping[str, Any], where: str) -> float:
    value = item.get("confidence")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= 1
    ):
        raise ReportError(f"{where}: confidence must be a number from 0 to 1")
    return float(value)
