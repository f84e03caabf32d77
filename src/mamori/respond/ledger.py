"""The ledger: plan → judge → store, approve/reject, expire, and what is enforced now.

This is the one service every door uses (CLI, web console, enforcement points); it owns the
decision states and writes every change and its audit entry in one transaction. The life of a
decision:

    plan ──▶ guard ──allow──────────▶ approved ──expire──▶ expired
                   ├─needs_approval─▶ pending ──approve──▶ approved
                   │                          └─reject───▶ rejected
                   └─deny───────────▶ denied

Only a *pending* decision can be approved, and approval re-checks the hard rules of the current
policy, so no approval turns a denial into an enforcement. A decision's TTL runs from the moment
it is enforced (when the guard allows it, or when a person approves it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from mamori.respond import audit
from mamori.respond.decision import Action, Decision, Judgement, State, Verdict
from mamori.respond.guard import WINDOW, Guard
from mamori.respond.incidents import Incident, load_report, read_incidents
from mamori.respond.policy import Policy, load_policy
from mamori.respond.profiles import Profiles, Proposed, load_profiles
from mamori.respond.tables import decisions
from mamori.store import Store

_ACTIONS = frozenset(Action)


class LedgerError(ValueError):
    """An operation the ledger refuses (unknown id, wrong state, no policy); said in one line."""


@dataclass(frozen=True)
class Entry:
    """A decision as the ledger holds it: the decision (target canonical, TTL as judged, ``created``
    = when enforcement began), the guard's verdict and reasons, and its state."""

    decision: Decision
    verdict: Verdict
    reasons: tuple[str, ...]
    state: State
    proposed: datetime
    judged: datetime
    updated: datetime
    proposed_ttl: int
    profile: str | None = None
    by: str | None = None
    policy: str | None = None

    @property
    def id(self) -> str:
        return self.decision.id

    @property
    def enforced(self) -> bool:
        return self.state is State.approved

    @property
    def expires(self) -> datetime | None:
        return self.decision.expires if self.state in (State.approved, State.expired) else None

    def to_json(self) -> dict[str, Any]:
        d = self.decision
        return {
            "id": d.id,
            "action": str(d.action),
            "target": d.target,
            "verdict": str(self.verdict),
            "reasons": list(self.reasons),
            "ttl": d.ttl,
            "proposed_ttl": self.proposed_ttl,
            "state": str(self.state),
            "scope": d.scope,
            "incident": d.incident,
            "confidence": d.confidence,
            "reason": d.reason,
            "profile": self.profile,
            "proposed": self.proposed.isoformat(),
            "expires": self.expires.isoformat() if self.expires else None,
            "by": self.by,
            "policy": self.policy,
        }


class Ledger:
    """Decisions in the state database. ``policy`` is needed to plan and is used to re-check
    approvals; ``profiles`` default to the shipped ``respond/profiles.yaml``."""

    def __init__(
        self,
        store: Store | None = None,
        policy: Policy | None = None,
        profiles: Profiles | None = None,
    ) -> None:
        self.store = store or Store()
        self.policy = policy
        self._profiles = profiles

    @property
    def profiles(self) -> Profiles:
        if self._profiles is None:
            self._profiles = load_profiles()
        return self._profiles

    # ------------------------------------------------------------------------------ planning

    def plan(
        self,
        report: Mapping[str, Any] | str | Path | Sequence[Incident],
        now: datetime | None = None,
    ) -> list[Entry]:
        """Propose decisions for a patrol report's incidents, judge and store them.

        ``report`` is a path to ``report.json``, its parsed JSON, or incidents already read.
        A decision already in the ledger (same id) keeps its state unless it was denied, in which
        case it is judged again (the policy may have changed); either way it is returned.
        """
        if isinstance(report, str | Path):
            incidents = load_report(report)
        elif isinstance(report, Mapping):
            incidents = read_incidents(report)
        else:
            incidents = list(report)
        now = _utc(now)
        return self.submit(self.profiles.propose(incidents, now), now)

    def submit(
        self, proposals: Iterable[Proposed | Decision], now: datetime | None = None
    ) -> list[Entry]:
        """Judge and store decisions made elsewhere (or by ``plan``), in one transaction."""
        if self.policy is None:
            raise LedgerError("no policy: the guard needs a policy file to judge decisions")
        now = _utc(now)
        items: list[tuple[Decision, str | None]] = []
        for item in proposals:
            proposed, profile = (
                (item.decision, item.profile) if isinstance(item, Proposed) else (item, None)
            )
            if proposed.action not in _ACTIONS:
                raise LedgerError(f"{proposed.id}: unknown action {proposed.action!r}")
            items.append((replace(proposed, created=now), profile))
        out: dict[str, Entry] = {}
        with self.store.begin() as conn, audit.Writer(conn) as log:
            guard = Guard(self.policy, recent=self._recent_allowed(conn, now))
            # the same decision may be spelt differently (192.0.2.1/32, Example.ORG.): it is
            # looked up under the id of its canonical form too
            canonical = [guard.check(p)[0].id for p, _ in items]
            known = self._get_many(conn, {p.id for p, _ in items} | set(canonical))
            new: dict[str, dict[str, Any]] = {}  # rows to insert, by id
            changed: dict[str, dict[str, Any]] = {}  # denied rows judged again
            for (proposed, profile), canonical_id in zip(items, canonical, strict=True):
                existing = known.get(proposed.id) or known.get(canonical_id)
                if existing is not None and existing.state is not State.denied:
                    out[existing.id] = existing
                    continue
                # logged under the id it will be stored by; the body keeps the target as proposed
                log.add("proposed", canonical_id, _decision_body(proposed, profile), now)
                j = guard.judge(proposed, now)
                row = self._row(proposed, j, profile, now)
                d = j.decision
                (new if d.id in new or d.id not in known else changed)[d.id] = row
                judged = {"verdict": str(j.verdict), "reasons": list(j.reasons)}
                judged |= {"target": d.target, "ttl": row["ttl"], "policy": row["policy"]}
                log.add("judged", d.id, judged, now)
                if row["state"] == State.approved:
                    log.add(
                        "approved",
                        d.id,
                        {"by": "guard", "expires": row["expires"].isoformat()},
                        now,
                    )
                known[d.id] = out[d.id] = _entry(SimpleNamespace(**row))
            if new:
                conn.execute(sa.insert(decisions), list(new.values()))
            for ident, row in changed.items():
                conn.execute(sa.update(decisions).where(decisions.c.id == ident).values(**row))
        return list(out.values())

    def _row(
        self, proposed: Decision, j: Judgement, profile: str | None, now: datetime
    ) -> dict[str, Any]:
        state = {
            Verdict.allow: State.approved,
            Verdict.needs_approval: State.pending,
            Verdict.deny: State.denied,
        }[j.verdict]
        d = j.decision
        return {
            "id": d.id,
            "action": str(d.action),
            "target": d.target,
            "scope": d.scope,
            "reason": d.reason,
            "incident": d.incident,
            "confidence": _safe_float(d.confidence),
            "ttl": _safe_int(d.ttl),
            "proposed_ttl": _safe_int(proposed.ttl),
            "profile": profile,
            "verdict": str(j.verdict),
            "reasons": list(j.reasons),
            "state": str(state),
            "proposed": now,
            "judged": now,
            "created": now if state is State.approved else None,
            "expires": now + timedelta(seconds=int(d.ttl)) if state is State.approved else None,
            "updated": now,
            "by": "guard" if state is State.approved else None,
            "policy": self.policy.source if self.policy else None,
        }

    def _get_many(self, conn: Connection, ids: set[str]) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        ordered = sorted(ids)
        for k in range(0, len(ordered), 500):  # bound the IN list
            q = sa.select(decisions).where(decisions.c.id.in_(ordered[k : k + 500]))
            out |= {row.id: _entry(row) for row in conn.execute(q)}
        return out

    def _recent_allowed(self, conn: Connection, now: datetime) -> list[datetime]:
        rows = conn.execute(
            sa.select(decisions.c.judged).where(
                decisions.c.verdict == str(Verdict.allow), decisions.c.judged > now - WINDOW
            )
        )
        return [_utc(r.judged) for r in rows]

    # ----------------------------------------------------------------------- a person decides

    def approve(self, ident: str, by: str = "operator", now: datetime | None = None) -> Entry:
        """Enforce a pending decision from now for its TTL. Refused (``LedgerError``) for any other
        state, and for a decision the current policy would deny: the ledger's policy, else the
        policy file that judged it if it is still there (re-read, so an edit since counts)."""
        now = _utc(now)
        refusal = None
        with self.store.begin() as conn:
            audit.lock(conn)
            entry = self._pending(conn, ident, "approved")
            ttl = entry.decision.ttl
            policy = self.policy or _stored_policy(entry.policy)
            if policy is not None:
                judged, denials, _, _ = Guard(policy).check(entry.decision)
                if denials:
                    # recorded (and committed) before refusing: a refused approval is an event too
                    audit.append(conn, "refused", ident, {"by": by, "reasons": denials}, now)
                    refusal = f"{ident} cannot be approved: {policy.source} denies it: " + (
                        "; ".join(denials)
                    )
                ttl = judged.ttl
            if refusal is None:
                expires = now + timedelta(seconds=ttl)
                conn.execute(
                    sa.update(decisions)
                    .where(decisions.c.id == ident)
                    .values(
                        state=str(State.approved),
                        created=now,
                        expires=expires,
                        ttl=ttl,
                        updated=now,
                        by=by,
                    )
                )
                audit.append(
                    conn, "approved", ident, {"by": by, "expires": expires.isoformat()}, now
                )
                result = self._get(conn, ident)
        if refusal is not None:
            raise LedgerError(refusal)
        assert result is not None
        return result

    def reject(self, ident: str, by: str = "operator", now: datetime | None = None) -> Entry:
        """Close a pending decision without enforcing it."""
        now = _utc(now)
        with self.store.begin() as conn:
            audit.lock(conn)
            self._pending(conn, ident, "rejected")
            conn.execute(
                sa.update(decisions)
                .where(decisions.c.id == ident)
                .values(state=str(State.rejected), updated=now, by=by)
            )
            audit.append(conn, "rejected", ident, {"by": by}, now)
            result = self._get(conn, ident)
        assert result is not None
        return result

    def _pending(self, conn: Connection, ident: str, verb: str) -> Entry:
        entry = self._get(conn, ident)
        if entry is None:
            raise LedgerError(f"no decision {ident!r}")
        if entry.state is not State.pending:
            raise LedgerError(f"{ident} is {entry.state}; only pending decisions can be {verb}")
        return entry

    # ------------------------------------------------------------------------------- expiry

    def expire(self, now: datetime | None = None) -> list[Decision]:
        """Mark enforced decisions whose time is up as expired; returns them (for ``apply``'s
        ``removed``)."""
        now = _utc(now)
        with self.store.begin() as conn, audit.Writer(conn) as log:
            rows = conn.execute(
                sa.select(decisions)
                .where(decisions.c.state == str(State.approved), decisions.c.expires <= now)
                .order_by(decisions.c.expires, decisions.c.id)
            ).all()
            ids = [row.id for row in rows]
            for k in range(0, len(ids), 500):
                conn.execute(
                    sa.update(decisions)
                    .where(decisions.c.id.in_(ids[k : k + 500]))
                    .values(state=str(State.expired), updated=now)
                )
            for row in rows:
                log.add("expired", row.id, {"expires": _utc(row.expires).isoformat()}, now)
        return [_entry(row).decision for row in rows]

    # ------------------------------------------------------------------------------ reading

    def active(self, now: datetime | None = None) -> list[Decision]:
        """The decisions enforcement points should carry now: approved and not yet expired."""
        now = _utc(now)
        with self.store.begin() as conn:
            rows = conn.execute(
                sa.select(decisions)
                .where(decisions.c.state == str(State.approved), decisions.c.expires > now)
                .order_by(decisions.c.created, decisions.c.id)
            ).all()
        return [_entry(r).decision for r in rows]

    def get(self, ident: str) -> Entry:
        with self.store.begin() as conn:
            entry = self._get(conn, ident)
        if entry is None:
            raise LedgerError(f"no decision {ident!r}")
        return entry

    def list(self, state: State | str | None = None) -> list[Entry]:
        q = sa.select(decisions).order_by(decisions.c.proposed, decisions.c.id)
        if state is not None:
            q = q.where(decisions.c.state == str(State(state)))
        with self.store.begin() as conn:
            return [_entry(r) for r in conn.execute(q)]

    def applied(
        self,
        point: str,
        added: Sequence[Decision] = (),
        removed: Sequence[Decision] = (),
        now: datetime | None = None,
    ) -> None:
        """Record in the audit log that enforcement point ``point`` carried out a change."""
        now = _utc(now)
        with self.store.begin() as conn, audit.Writer(conn) as log:
            for op, items in (("add", added), ("remove", removed)):
                for d in items:
                    log.add("applied", d.id, {"point": point, "op": op, "target": d.target}, now)

    def audit_entries(self, decision: str | None = None) -> list[audit.AuditEntry]:
        with self.store.begin() as conn:
            return audit.entries(conn, decision)

    def verify_audit(self, expect_head: str | None = None) -> audit.Verification:
        with self.store.begin() as conn:
            return audit.verify(conn, expect_head)

    def _get(self, conn: Connection, ident: str) -> Entry | None:
        row = conn.execute(sa.select(decisions).where(decisions.c.id == ident)).first()
        return None if row is None else _entry(row)


def _stored_policy(source: str | None) -> Policy | None:
    if not source or not Path(source).is_file():
        return None
    return load_policy(source)


def _entry(row: Any) -> Entry:
    created = _utc(row.created) if row.created is not None else _utc(row.proposed)
    decision = Decision(
        action=Action(row.action),
        target=row.target,
        reason=row.reason,
        incident=row.incident,
        confidence=row.confidence,
        ttl=row.ttl,
        scope=row.scope,
        created=created,
    )
    return Entry(
        decision=decision,
        verdict=Verdict(row.verdict),
        reasons=tuple(row.reasons or ()),
        state=State(row.state),
        proposed=_utc(row.proposed),
        judged=_utc(row.judged),
        updated=_utc(row.updated),
        proposed_ttl=row.proposed_ttl,
        profile=row.profile,
        by=row.by,
        policy=row.policy,
    )


def _decision_body(d: Decision, profile: str | None) -> dict[str, Any]:
    return {
        "action": str(d.action),
        "target": d.target,
        "scope": d.scope,
        "incident": d.incident,
        "confidence": d.confidence if isinstance(d.confidence, int | float) else str(d.confidence),
        "ttl": _safe_int(d.ttl),
        "reason": d.reason,
        "profile": profile,
    }


def _safe_float(value: object) -> float:
    """A number the database can hold (SQLite turns NaN into NULL); the audit keeps the original."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return out if math.isfinite(out) else 0.0


def _safe_int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
