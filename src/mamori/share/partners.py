"""The partner registry: who may read or write which TAXII collection, with which credential.

A credential is printed once, when the partner is added, and only its salted scrypt hash is kept:
a stolen state database must not let anyone pose as a partner. Verifying scrypt costs tens of
milliseconds by design, so a verified (partner, credential) pair is remembered in memory, keyed by
the stored hash: revoking or re-keying a partner changes or removes that row, which every request
reads, so the memory can never outlive the credential.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from mamori.share import tables as t
from mamori.store import Store

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
OPEN_TLPS_DEFAULT = ("clear", "green")
_OPENABLE = ("clear", "green")  # AMBER needs naming, RED never leaves: neither can be "open"
_SCRYPT = (2**14, 8, 1)  # n, r, p: ~16 MiB and tens of ms per guess
_verified: dict[tuple[str, str], tuple[str, bytes]] = {}


class PartnerError(ValueError):
    """A registry operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class Grant:
    collection_id: str
    alias: str
    can_read: bool
    can_write: bool


@dataclass(frozen=True)
class Partner:
    name: str
    open_tlps: tuple[str, ...]
    created: datetime
    revoked: datetime | None = None
    grants: dict[str, Grant] = field(default_factory=dict)  # by collection id
    remote_url: str | None = None
    remote_collection: str | None = None
    remote_user: str | None = None
    remote_password: str | None = None
    last_pull: str | None = None


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    n, r, p = _SCRYPT
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            secret.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise PartnerError(
            f"partner name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, no ':')"
        )
    return name


def check_open_tlps(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(v.strip().lower().replace("white", "clear") for v in values if v))
    bad = [v for v in out if v not in _OPENABLE]
    if bad:
        raise PartnerError(
            f"TLP {', '.join(bad)} cannot be shared without naming the partner on the object "
            f"(only {' and '.join(_OPENABLE)} can be open to a partner)"
        )
    return out


def ensure_collection(
    conn: sa.Connection, alias: str, title: str | None = None, description: str | None = None
) -> str:
    """The id of the collection with this alias (or id), created when absent."""
    row = conn.execute(
        sa.select(t.collections.c.id).where(
            sa.or_(t.collections.c.alias == alias, t.collections.c.id == alias)
        )
    ).first()
    if row:
        return str(row[0])
    cid = str(uuid.uuid4())
    conn.execute(
        t.collections.insert().values(
            id=cid,
            alias=alias,
            title=title or alias,
            description=description,
            created=datetime.now(UTC),
        )
    )
    return cid


def add(
    store: Store,
    name: str,
    collections: list[str],
    can_read: bool = True,
    can_write: bool = False,
    open_tlps: tuple[str, ...] = OPEN_TLPS_DEFAULT,
    remote_url: str | None = None,
    remote_collection: str | None = None,
    remote_user: str | None = None,
    remote_password: str | None = None,
) -> str:
    """Register a partner and return its credential (the only time it exists in clear)."""
    check_name(name)
    opens = check_open_tlps(open_tlps)
    secret = secrets.token_urlsafe(32)
    with store.begin() as conn:
        if conn.execute(sa.select(t.partners.c.name).where(t.partners.c.name == name)).first():
            raise PartnerError(f"partner {name!r} exists (revoke it first, or pick another name)")
        conn.execute(
            t.partners.insert().values(
                name=name,
                secret_hash=hash_secret(secret),
                created=datetime.now(UTC),
                open_tlps=",".join(opens),
                remote_url=remote_url,
                remote_collection=remote_collection,
                remote_user=remote_user,
                remote_password=remote_password,
            )
        )
        for alias in collections:
            cid = ensure_collection(conn, alias)
            conn.execute(
                t.grants.insert().values(
                    partner=name, collection_id=cid, can_read=can_read, can_write=can_write
                )
            )
    return secret


def revoke(store: Store, name: str) -> None:
    """Revoke a partner: its credential stops working at once; its row stays for the record."""
    with store.begin() as conn:
        done = conn.execute(
            t.partners.update()
            .where(t.partners.c.name == name, t.partners.c.revoked.is_(None))
            .values(revoked=datetime.now(UTC), secret_hash="revoked")
        ).rowcount
    if not done:
        raise PartnerError(f"no active partner named {name!r}")


def _partner(conn: sa.Connection, row: sa.Row) -> Partner:
    gs = conn.execute(
        sa.select(t.grants, t.collections.c.alias)
        .join(t.collections, t.collections.c.id == t.grants.c.collection_id)
        .where(t.grants.c.partner == row.name)
    ).all()
    return Partner(
        name=row.name,
        open_tlps=tuple(x for x in row.open_tlps.split(",") if x),
        created=row.created,
        revoked=row.revoked,
        grants={
            g.collection_id: Grant(g.collection_id, g.alias, g.can_read, g.can_write) for g in gs
        },
        remote_url=row.remote_url,
        remote_collection=row.remote_collection,
        remote_user=row.remote_user,
        remote_password=row.remote_password,
        last_pull=row.last_pull,
    )


def get(store: Store, name: str) -> Partner:
    with store.begin() as conn:
        row = conn.execute(sa.select(t.partners).where(t.partners.c.name == name)).first()
        if row is None:
            raise PartnerError(f"no partner named {name!r}")
        return _partner(conn, row)


def all_partners(store: Store) -> list[Partner]:
    with store.begin() as conn:
        rows = conn.execute(sa.select(t.partners).order_by(t.partners.c.name)).all()
        return [_partner(conn, r) for r in rows]


_BY_NAME = sa.select(t.partners).where(t.partners.c.name == sa.bindparam("name"))
# What a request needs of the partner's row: read on the driver's cursor (rawsql).
_CREDENTIAL = sa.select(t.partners.c.secret_hash, t.partners.c.revoked.is_not(None)).where(
    t.partners.c.name == sa.bindparam("name")
)
_known: dict[tuple[str, str, str], Partner] = {}


def authenticate(
    store: Store, name: str, secret: str, conn: sa.Connection | None = None
) -> Partner | None:
    """The active partner these credentials belong to, or None.

    One indexed read of the partner's row per call (so revocation is immediate), on ``conn`` when
    the caller has a connection open for the rest of its request; its grants are remembered
    under the row's credential hash, which changes whenever the partner is revoked or added anew
    (grants are only ever set when a partner is added).
    """
    if conn is None:
        with store.begin() as own:
            return authenticate(store, name, secret, own)
    from mamori.share.taxii.rawsql import raw_rows

    found = raw_rows(conn, "partner-credential", _CREDENTIAL, {"name": name})
    if not found or found[0][1]:  # unknown, or revoked
        return None
    secret_hash = found[0][0]
    key = (store.url, name)
    fingerprint = hashlib.sha256(secret.encode()).digest()
    if _verified.get(key) != (secret_hash, fingerprint):
        if not verify_secret(secret, secret_hash):
            return None
        _verified[key] = (secret_hash, fingerprint)
    known = (store.url, name, secret_hash)
    if known not in _known:
        row = conn.execute(_BY_NAME, {"name": name}).first()
        if row is None or row.secret_hash != secret_hash:
            return None
        _known[known] = _partner(conn, row)
    return _known[known]


def set_last_pull(store: Store, name: str, stamp: str) -> None:
    with store.begin() as conn:
        conn.execute(t.partners.update().where(t.partners.c.name == name).values(last_pull=stamp))


def known(store: Store, name: str, fingerprint: bytes, conn: Any) -> Partner | None:
    """:func:`authenticate` for a credential this process has already verified, else None (the
    caller then asks :func:`authenticate`). ``fingerprint``: the SHA-256 of the secret.

    The partner's row is still read on ``conn`` (a SQLAlchemy connection or a
    :class:`~mamori.share.taxii.rawsql.RawConn`) on every call, so revoking or re-keying a
    partner takes effect on its next request, in every process serving it."""
    from mamori.share.taxii.rawsql import raw_rows

    found = raw_rows(conn, "partner-credential", _CREDENTIAL, {"name": name})
    if not found or found[0][1]:  # unknown, or revoked
        return None
    secret_hash = found[0][0]
    if _verified.get((store.url, name)) != (secret_hash, fingerprint):
        return None
    return _known.get((store.url, name, secret_hash))
