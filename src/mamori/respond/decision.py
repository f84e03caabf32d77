"""The contract between incidents, the guard and enforcement points.

A ``Decision`` is what mamori proposes to do about an incident; the guard judges it, a person may
approve it, and enforcement points carry out the ones that are enforced until they expire. Nothing
here acts: enforcement points do, and only on equipment the user owns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol


class Action(StrEnum):
    block_ip = "block_ip"  # target: an IP address or CIDR, dropped at the user's edge
    block_domain = "block_domain"  # target: a domain, answered NXDOMAIN by the user's resolver
    sinkhole = "sinkhole"  # target: a domain, answered with the user's sinkhole address
    rate_limit = "rate_limit"  # target: an IP or CIDR, policed rather than dropped
    quarantine = "quarantine"  # target: an internal host, isolated from the rest of the network
    notify = "notify"  # target: an IP or domain whose abuse contact receives a report


class Verdict(StrEnum):
    allow = "allow"
    needs_approval = "needs_approval"
    deny = "deny"


class State(StrEnum):
    proposed = "proposed"  # made by a profile, not judged yet
    pending = "pending"  # the guard said needs_approval; waiting for a person
    approved = "approved"  # allowed by the guard or a person; enforcement points may apply it
    rejected = "rejected"  # a person said no
    denied = "denied"  # the guard said no
    expired = "expired"  # its TTL ran out; enforcement points removed it


@dataclass(frozen=True)
class Decision:
    action: Action
    target: str
    reason: str
    incident: str
    confidence: float
    ttl: int  # seconds; the guard refuses a decision without a finite TTL
    scope: str = "edge"  # which enforcement points may carry it ("edge", "resolver", "all", a name)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def id(self) -> str:
        """Stable across re-plans of the same report, so approving twice cannot enforce twice."""
        key = f"{self.action}|{self.target}|{self.incident}|{self.scope}".encode()
        return "d-" + hashlib.sha256(key).hexdigest()[:16]

    @property
    def expires(self) -> datetime:
        return self.created + timedelta(seconds=self.ttl)


@dataclass(frozen=True)
class Judgement:
    decision: Decision
    verdict: Verdict
    reasons: tuple[str, ...]


class EnforcementPoint(Protocol):
    """One place where enforced decisions take effect (an nftables set, an RPZ zone, ...).

    ``render`` writes the whole current state from the active decisions (what a fresh device or a
    pulling firewall needs); ``apply`` carries out only what changed since the last call.
    """

    name: str
    actions: frozenset[Action]

    def render(self, active: Sequence[Decision], now: datetime) -> str: ...

    def apply(self, added: Sequence[Decision], removed: Sequence[Decision]) -> None: ...


_POINTS: dict[str, Callable[..., EnforcementPoint]] = {}


def enforcement_point(
    name: str,
) -> Callable[[Callable[..., EnforcementPoint]], Callable[..., EnforcementPoint]]:
    """Register an enforcement point factory under ``name`` so the core never names it."""

    def wrap(factory: Callable[..., EnforcementPoint]) -> Callable[..., EnforcementPoint]:
        if name in _POINTS:
            raise ValueError(f"enforcement point {name!r} registered twice")
        _POINTS[name] = factory
        return factory

    return wrap


def enforcement_points() -> dict[str, Callable[..., EnforcementPoint]]:
    import mamori.respond.points  # noqa: F401  (registers the built-in points)

    return dict(_POINTS)
