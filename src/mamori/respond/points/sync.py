"""Bring enforcement points up to the ledger, exactly once, from any process.

What a point carries is read back from the audit log (its ``applied`` entries), not remembered by
a process: running ``enforce`` again, from cron, after a crash or on another host, gives each point
only what it has not been given yet and withdraws only what it still carries. An abuse notice is
therefore sent once, and a block is never applied twice.

A decision goes to every point that carries its action, unless its ``scope`` names one point
(``scope: rpz``), in which case only that one. A point may leave some decisions for later by
listing their ids in its ``skipped`` attribute after ``apply`` (the abuse notifier does, for an
address whose abuse contact is not in the data yet).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from mamori.respond.decision import Decision, EnforcementPoint, enforcement_points
from mamori.respond.ledger import Ledger
from mamori.respond.points.targets import PointError


@dataclass(frozen=True)
class Change:
    point: str
    added: tuple[Decision, ...]
    removed: tuple[Decision, ...]


def carried(ledger: Ledger, point: str) -> set[str]:
    """Ids of the decisions ``point`` carries now, according to the audit log."""
    held: set[str] = set()
    for entry in ledger.audit_entries():
        if entry.event != "applied" or entry.body.get("point") != point or not entry.decision:
            continue
        if entry.body.get("op") == "add":
            held.add(entry.decision)
        else:
            held.discard(entry.decision)
    return held


def _for(point: EnforcementPoint, d: Decision, names: set[str]) -> bool:
    if d.action not in point.actions:
        return False
    return d.scope not in names or d.scope == point.name


def enforce(
    ledger: Ledger, points: Sequence[EnforcementPoint], now: datetime | None = None
) -> list[Change]:
    """Expire what ran out, then apply each point's difference; each point's change is audited
    as soon as it is carried out, so a failing point leaves the others' records right."""
    ledger.expire(now)
    active = ledger.active(now)
    names = set(enforcement_points())
    changes = []
    for point in points:
        want = {d.id: d for d in active if _for(point, d, names)}
        held = carried(ledger, point.name)
        added = [d for i, d in want.items() if i not in held]
        removed = [ledger.get(i).decision for i in sorted(held - want.keys())]
        if added or removed:
            point.apply(added, removed)
            skipped = getattr(point, "skipped", set())  # a point may carry some of them later
            added = [d for d in added if d.id not in skipped]
            ledger.applied(point.name, added, removed, now)
        changes.append(Change(point.name, tuple(added), tuple(removed)))
    return changes


def load_points(path: str | Path) -> list[EnforcementPoint]:
    """Points from a YAML file ``{point name: {setting: value}}``, checked strictly: an unknown
    point or setting, or a bad value, is an error naming the file, the point and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PointError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PointError(f"{path}: not YAML: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise PointError(f"{path}: expected a mapping of enforcement point names to settings")
    factories = enforcement_points()
    out = []
    for name, settings in data.items():
        where = f"{path}: {name}"
        if name not in factories:
            raise PointError(
                f"{where}: unknown enforcement point (known: {', '.join(sorted(factories))})"
            )
        settings = settings or {}
        if not isinstance(settings, dict):
            raise PointError(f"{where}: settings must be a mapping")
        factory = factories[name]
        if name == "abuse-notify":
            out.append(_notifier(settings, where))
            continue
        allowed = set(inspect.signature(factory).parameters)
        for key in settings:
            if key not in allowed:
                raise PointError(
                    f"{where}: unknown setting {key!r} (known: {', '.join(sorted(allowed))})"
                )
        try:
            out.append(factory(**settings))
        except (TypeError, ValueError) as exc:
            raise PointError(f"{where}: {exc}") from exc
    return out


def _notifier(settings: Mapping[str, Any], where: str) -> EnforcementPoint:
    from mamori.respond.notify import (
        AbuseContacts,
        AbuseNotifier,
        NotifyError,
        Reporter,
        SmtpRelay,
        load_incidents,
    )

    known = {"from", "organisation", "reply_to", "hide_victims", "contacts", "reports", "relay",
             "outbox"}  # fmt: skip
    for key in settings:
        if key not in known:
            raise PointError(
                f"{where}: unknown setting {key!r} (known: {', '.join(sorted(known))})"
            )
    for key in ("from", "organisation", "contacts", "reports"):
        if key not in settings:
            raise PointError(f"{where}: {key!r} is required")
    try:
        reporter = Reporter(
            settings["from"],
            settings["organisation"],
            settings.get("reply_to"),
            bool(settings.get("hide_victims", False)),
        )
        relay = SmtpRelay(**settings["relay"]) if settings.get("relay") else None
        return AbuseNotifier(
            reporter,
            AbuseContacts.load(settings["contacts"]),
            load_incidents(settings["reports"]),
            relay=relay,
            outbox=settings.get("outbox"),
        )
    except (NotifyError, TypeError) as exc:
        raise PointError(f"{where}: {exc}") from exc
