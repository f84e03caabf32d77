"""A CrowdSec-compatible decision stream, so the bouncers users already run enforce mamori's bans.

CrowdSec bouncers (firewall, nginx, HAProxy, Traefik, pycrowdsec, ...) pull
``GET /v1/decisions/stream?startup=true`` once, then poll without ``startup`` for what changed,
authenticating with ``X-Api-Key`` (CrowdSec's local API swagger, ``DecisionsStreamResponse``):

    {"new": [{"id": 1, "origin": "mamori", "type": "ban", "scope": "Ip", "value": "192.0.2.7",
              "duration": "3h59m0s", "until": "...", "scenario": "mamori/...", "simulated": false}],
     "deleted": [...]}

The stream is read from the ledger at each pull, so ``apply`` has nothing to push: the decisions a
bouncer sees are exactly the enforced ones. What each bouncer has already been told is kept per
bouncer (its last pull), as CrowdSec's own API does; keys are stored only as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from mamori.respond.decision import Action, Decision, State, enforcement_point
from mamori.respond.points.targets import PointError, network
from mamori.respond.tables import decisions
from mamori.store import Store, metadata

ORIGIN = "mamori"

bouncers = sa.Table(
    "respond_crowdsec_bouncers",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_pull", sa.DateTime(timezone=True), nullable=True),
)


def _ready(store: Store) -> None:
    # The store creates the tables of the modules it knows; this one may be imported after it.
    bouncers.create(store.engine, checkfirst=True)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def add_bouncer(store: Store, name: str, now: datetime | None = None) -> str:
    """Register a bouncer and return its new API key (shown once, like ``cscli bouncers add``)."""
    if not name or len(name) > 100:
        raise PointError("crowdsec: a bouncer needs a name of 1 to 100 characters")
    _ready(store)
    key = secrets.token_hex(16)
    with store.begin() as conn:
        if conn.execute(sa.select(bouncers.c.name).where(bouncers.c.name == name)).first():
            raise PointError(f"crowdsec: bouncer {name!r} already exists")
        conn.execute(
            sa.insert(bouncers).values(
                name=name, key_sha256=_hash(key), created=now or datetime.now(UTC)
            )
        )
    return key


def remove_bouncer(store: Store, name: str) -> None:
    _ready(store)
    with store.begin() as conn:
        if not conn.execute(sa.delete(bouncers).where(bouncers.c.name == name)).rowcount:
            raise PointError(f"crowdsec: no bouncer {name!r}")


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration`` spelling, which bouncers parse: ``3h59m0s``, ``4m5s``, ``-12s``."""
    sign = "-" if seconds < 0 else ""
    whole = math.floor(abs(seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


def _numeric_id(decision_id: str) -> int:
    """Bouncers want an integer id: 52 bits of our stable id (exact in JSON doubles too)."""
    return int(decision_id.removeprefix("d-")[:13], 16)


def as_crowdsec(
    d: Decision, now: datetime, expires: datetime, scenario: str | None = None
) -> dict[str, Any]:
    net = network(d)
    single = net.num_addresses == 1
    return {
        "id": _numeric_id(d.id),
        "origin": ORIGIN,
        "type": "ban",
        "scope": "Ip" if single else "Range",
        "value": str(net.network_address) if single else str(net),
        "duration": go_duration((expires - now).total_seconds()),
        "until": expires.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "scenario": scenario or f"{ORIGIN}/{d.action}",
        "simulated": False,
    }


@enforcement_point("crowdsec")
class CrowdsecStream:
    """The decisions CrowdSec bouncers pull; ``render`` is the ``startup=true`` answer."""

    name = "crowdsec"
    actions = frozenset({Action.block_ip})

    def render(self, active: Sequence[Decision], now: datetime) -> str:
        new = [
            as_crowdsec(d, now, d.expires)
            for d in active
            if d.action in self.actions and d.expires > now
        ]
        return json.dumps({"new": new, "deleted": []}, indent=1)

    def apply(self, added: Sequence[Decision], removed: Sequence[Decision]) -> None:
        """Nothing to push: bouncers pull, and each pull reads the ledger."""


# ---------------------------------------------------------------------------------- the API


def _row_decision(row: Any) -> Decision:
    created = row.created or row.proposed
    created = created if created.tzinfo else created.replace(tzinfo=UTC)
    return Decision(
        Action(row.action), row.target, row.reason, row.incident, row.confidence, row.ttl,
        row.scope, created,
    )  # fmt: skip


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def stream(
    store: Store, since: datetime | None, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(new, deleted) for a bouncer whose last pull was ``since`` (None: it is starting up)."""
    live = (decisions.c.state == str(State.approved)) & (decisions.c.expires > now)
    ended = (
        (decisions.c.state == str(State.approved)) & (decisions.c.expires <= now)
    ) | decisions.c.state.in_([str(State.expired), str(State.rejected), str(State.denied)])
    block = decisions.c.action == str(Action.block_ip)
    new_q = sa.select(decisions).where(block, live)
    if since is not None:
        new_q = new_q.where(decisions.c.created > since)
        del_q = sa.select(decisions).where(
            block, ended, decisions.c.created.is_not(None), decisions.c.updated > since
        )
        # an approved decision whose time ran out before `respond expire` marked it
        del_q = del_q.union_all(
            sa.select(decisions).where(
                block,
                decisions.c.state == str(State.approved),
                decisions.c.expires <= now,
                decisions.c.expires > since,
                decisions.c.updated <= since,
            )
        )
    with store.begin() as conn:
        new_rows = conn.execute(new_q).all()
        del_rows = conn.execute(del_q).all() if since is not None else []
    new = [_json(r, now) for r in new_rows]
    seen: set[str] = set()
    deleted = []
    for r in del_rows:
        if r.id not in seen:
            seen.add(r.id)
            deleted.append(_json(r, now))
    return new, deleted


def _json(row: Any, now: datetime) -> dict[str, Any]:
    d = _row_decision(row)
    expires = _utc(row.expires) if row.expires is not None else now
    return as_crowdsec(d, now, expires, f"{ORIGIN}/{row.profile or d.action}")


def _filter(items: Iterable[dict[str, Any]], **q: str | None) -> list[dict[str, Any]]:
    out = list(items)
    if q.get("scopes"):
        scopes = {s.strip().lower() for s in q["scopes"].split(",") if s.strip()}  # type: ignore[union-attr]
        out = [d for d in out if d["scope"].lower() in scopes]
    if q.get("origins"):
        origins = {s.strip() for s in q["origins"].split(",")}  # type: ignore[union-attr]
        out = [d for d in out if d["origin"] in origins]
    if q.get("scenarios_containing"):
        words = [w for w in q["scenarios_containing"].split(",") if w]  # type: ignore[union-attr]
        out = [d for d in out if any(w in d["scenario"] for w in words)]
    if q.get("scenarios_not_containing"):
        words = [w for w in q["scenarios_not_containing"].split(",") if w]  # type: ignore[union-attr]
        out = [d for d in out if not any(w in d["scenario"] for w in words)]
    return out


def _bouncer(store: Store, key: str | None) -> tuple[str, datetime | None]:
    _ready(store)
    if key:
        with store.begin() as conn:
            row = conn.execute(
                sa.select(bouncers).where(bouncers.c.key_sha256 == _hash(key))
            ).first()
        if row is not None:
            return row.name, _utc(row.last_pull) if row.last_pull else None
    raise HTTPException(status_code=403, detail="access forbidden")


router = APIRouter(prefix="/v1", tags=["crowdsec"])


@router.get("/decisions/stream")
def decisions_stream(
    request: Request,
    startup: bool = False,
    scopes: str | None = None,
    origins: str | None = None,
    scenarios_containing: str | None = None,
    scenarios_not_containing: str | None = None,
    x_api_key: str | None = Header(default=None),
) -> JSONResponse:
    """CrowdSec's ``getDecisionsStream``: everything enforced at startup, then what changed."""
    store: Store = request.app.state.store
    name, last = _bouncer(store, x_api_key)
    now = datetime.now(UTC)
    new, deleted = stream(store, None if startup or last is None else last, now)
    with store.begin() as conn:
        conn.execute(sa.update(bouncers).where(bouncers.c.name == name).values(last_pull=now))
    q = {
        "scopes": scopes,
        "origins": origins,
        "scenarios_containing": scenarios_containing,
        "scenarios_not_containing": scenarios_not_containing,
    }
    return JSONResponse({"new": _filter(new, **q), "deleted": _filter(deleted, **q)})


@router.get("/decisions")
def decisions_query(
    request: Request,
    ip: str | None = None,
    range: str | None = Query(default=None),
    x_api_key: str | None = Header(default=None),
) -> JSONResponse:
    """CrowdSec's ``getDecisions`` for live-mode bouncers: the bans covering ``ip`` (or ``range``);
    ``null`` when there are none, as CrowdSec answers."""
    store: Store = request.app.state.store
    _bouncer(store, x_api_key)
    now = datetime.now(UTC)
    new, _ = stream(store, None, now)
    asked = ip or range
    if asked:
        try:
            probe = ipaddress.ip_network(asked, strict=False)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=f"{asked!r} is not an IP or range") from exc
        new = [
            d
            for d in new
            if probe.version == ipaddress.ip_network(d["value"]).version
            and probe.subnet_of(ipaddress.ip_network(d["value"]))  # type: ignore[arg-type]
        ]
    return JSONResponse(new or None)
