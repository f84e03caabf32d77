"""TAXII objects in the state database: adding versions, and paged queries done by the database.

Every read is one indexed range scan: the collection, the version flag (``is_last`` for the
default ``match[version]=last``), then ``date_added`` order from a keyset cursor. The TLP rule is
part of the same WHERE clause (:func:`visible_to`), so a page never holds an object its reader
may not see and paging never depends on the size of the collection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from mamori.share import tables as t
from mamori.share.taxii.timestamps import format_us, now_us, parse_us

OBJ = t.objects.c
AMBERS = ("amber", "amber+strict")
_CHUNK = 500


@dataclass(frozen=True)
class Reader:
    """Who reads: a partner's name and the TLPs it receives without being named (CLEAR/GREEN)."""

    partner: str
    open_tlps: tuple[str, ...] = ()


def visible_to(reader: Reader) -> sa.ColumnElement[bool]:
    """The release rule of share/tlp.py as SQL (tlp.may_release stays the final word per row).

    RED and unmarked rows are never visible; CLEAR/GREEN when open to the reader; AMBER and
    AMBER+STRICT of ours only when the reader is named on the row, and a partner's AMBER only back
    to that partner.
    """
    named = sa.select(t.audience.c.object_pk).where(t.audience.c.partner == reader.partner)
    amber = OBJ.tlp.in_(AMBERS)
    conds: list[sa.ColumnElement[bool]] = [
        sa.and_(amber, OBJ.provenance == f"partner:{reader.partner}"),
        sa.and_(amber, OBJ.provenance == "local", OBJ.pk.in_(named)),
    ]
    opens = [x for x in reader.open_tlps if x in ("clear", "green")]
    if opens:
        conds.insert(0, OBJ.tlp.in_(opens))
    return sa.or_(*conds)


@dataclass(frozen=True)
class Query:
    """A TAXII filter: ``added_after``, ``match[...]``, ``limit`` and the decoded ``next``."""

    added_after: int | None = None
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    versions: tuple[str, ...] = ("last",)  # "first", "last", "all" or timestamps
    spec_versions: tuple[str, ...] = ()
    limit: int = 100
    after: tuple[int, int] | None = None  # (date_added_us, pk) of the previous page's last row


@dataclass
class Page:
    rows: list[sa.Row[Any]]
    more: bool

    @property
    def first_added(self) -> int | None:
        return self.rows[0].date_added_us if self.rows else None

    @property
    def last_added(self) -> int | None:
        return self.rows[-1].date_added_us if self.rows else None


def _where(collection_id: str, q: Query, reader: Reader | None) -> list[sa.ColumnElement[bool]]:
    conds: list[sa.ColumnElement[bool]] = [OBJ.collection_id == collection_id]
    if "all" not in q.versions:
        vs: list[sa.ColumnElement[bool]] = []
        if "last" in q.versions:
            vs.append(OBJ.is_last.is_(True))
        if "first" in q.versions:
            vs.append(OBJ.is_first.is_(True))
        stamps = [parse_us(v) for v in q.versions if v not in ("first", "last")]
        if stamps:
            vs.append(OBJ.version_us.in_(stamps))
        conds.append(sa.or_(*vs) if len(vs) > 1 else vs[0])
    if q.ids:
        conds.append(OBJ.object_id.in_(q.ids))
    if q.types:
        conds.append(OBJ.type.in_(q.types))
    if q.spec_versions:
        conds.append(OBJ.spec_version.in_(q.spec_versions))
    if q.added_after is not None:
        conds.append(OBJ.date_added_us > q.added_after)
    if q.after is not None:
        added, pk = q.after
        conds.append(
            sa.or_(OBJ.date_added_us > added, sa.and_(OBJ.date_added_us == added, OBJ.pk > pk))
        )
    if reader is not None:
        conds.append(visible_to(reader))
    return conds


def page(
    conn: sa.Connection,
    collection_id: str,
    q: Query,
    reader: Reader | None,
    columns: Sequence[sa.ColumnElement[Any]],
) -> Page:
    """One page of rows in ``date_added`` order (``limit`` + 1 fetched to know if there is more)."""
    stmt = (
        sa.select(OBJ.pk, OBJ.date_added_us, *columns)
        .where(*_where(collection_id, q, reader))
        .order_by(OBJ.date_added_us, OBJ.pk)
        .limit(q.limit + 1)
    )
    rows = list(conn.execute(stmt).all())
    return Page(rows[: q.limit], len(rows) > q.limit)


def named_on(conn: sa.Connection, pks: Iterable[int]) -> dict[int, list[str]]:
    """Partners named on each of these rows (the AMBER audience)."""
    out: dict[int, list[str]] = {}
    pks = list(pks)
    for i in range(0, len(pks), _CHUNK):
        chunk = pks[i : i + _CHUNK]
        for pk, partner in conn.execute(
            sa.select(t.audience.c.object_pk, t.audience.c.partner).where(
                t.audience.c.object_pk.in_(chunk)
            )
        ):
            out.setdefault(pk, []).append(partner)
    return out


# --- writing ------------------------------------------------------------------------------------


@dataclass
class Item:
    """One object to add, with what the share stage decided about it."""

    obj: dict[str, Any]
    tlp: str  # clear | green | amber | amber+strict | red | unmarked
    provenance: str  # "local" or "partner:NAME"
    audience: tuple[str, ...] = ()
    body: str = field(default="")


@dataclass(frozen=True)
class Outcome:
    id: str
    version: str
    added: bool  # False: that id and version were already in the collection


def _version_of(obj: dict[str, Any]) -> str | None:
    v = obj.get("modified") or obj.get("created")
    return str(v) if v else None


def add(conn: sa.Connection, collection_id: str, items: Sequence[Item]) -> list[Outcome]:
    """Add object versions; an id and version already present is left as it is (idempotent).

    ``date_added`` is strictly increasing within a collection (one microsecond apart inside a
    request), so a client resuming with ``added_after`` = the last ``date_added`` it saw can
    neither miss nor repeat an object.
    """
    ids = sorted({str(it.obj["id"]) for it in items})
    existing: dict[str, set[int]] = {}
    for i in range(0, len(ids), _CHUNK):
        for oid, vus in conn.execute(
            sa.select(OBJ.object_id, OBJ.version_us).where(
                OBJ.collection_id == collection_id, OBJ.object_id.in_(ids[i : i + _CHUNK])
            )
        ):
            existing.setdefault(oid, set()).add(vus)
    latest = conn.execute(
        sa.select(sa.func.max(OBJ.date_added_us)).where(OBJ.collection_id == collection_id)
    ).scalar()
    added_us = max(now_us(), (latest or 0) + 1)
    rows: list[dict[str, Any]] = []
    outcomes: list[Outcome] = []
    new_versions: dict[str, list[int]] = {}
    for it in items:
        oid = str(it.obj["id"])
        version = _version_of(it.obj) or format_us(added_us)
        vus = parse_us(version)
        seen = existing.setdefault(oid, set())
        if vus in seen:
            outcomes.append(Outcome(oid, version, False))
            continue
        seen.add(vus)
        new_versions.setdefault(oid, []).append(vus)
        rows.append(
            {
                "collection_id": collection_id,
                "object_id": oid,
                "type": str(it.obj.get("type") or oid.split("--", 1)[0]),
                "version": version,
                "version_us": vus,
                "spec_version": str(it.obj.get("spec_version") or "2.1"),
                "date_added_us": added_us,
                "is_last": True,
                "is_first": True,
                "tlp": it.tlp,
                "provenance": it.provenance,
                "body": it.body or json.dumps(it.obj, separators=(",", ":"), ensure_ascii=False),
                "_audience": it.audience,
            }
        )
        outcomes.append(Outcome(oid, version, True))
        added_us += 1
    # A row is first/last on insert only when it is its object's only version; else recompute.
    several = {oid for oid, vs in existing.items() if len(vs) > 1 and oid in new_versions}
    for r in rows:
        if r["object_id"] in several:
            r["is_last"] = r["is_first"] = False
    if rows:
        conn.execute(
            t.objects.insert(), [{k: v for k, v in r.items() if k[0] != "_"} for r in rows]
        )
    _recompute_flags(conn, collection_id, sorted(several))
    named = [r for r in rows if r["_audience"]]
    if named:
        keys = {(r["object_id"], r["version_us"]): r["_audience"] for r in named}
        found = conn.execute(
            sa.select(OBJ.pk, OBJ.object_id, OBJ.version_us).where(
                OBJ.collection_id == collection_id,
                OBJ.object_id.in_(sorted({k[0] for k in keys})),
            )
        ).all()
        conn.execute(
            t.audience.insert(),
            [
                {"object_pk": pk, "partner": p}
                for pk, oid, vus in found
                for p in keys.get((oid, vus), ())
            ],
        )
    return outcomes


def _recompute_flags(conn: sa.Connection, collection_id: str, object_ids: Sequence[str]) -> None:
    if not object_ids:
        return
    o2 = t.objects.alias("o2")
    for i in range(0, len(object_ids), _CHUNK):
        chunk = list(object_ids[i : i + _CHUNK])
        same = sa.and_(o2.c.collection_id == OBJ.collection_id, o2.c.object_id == OBJ.object_id)
        hi = sa.select(sa.func.max(o2.c.version_us)).where(same).scalar_subquery()
        lo = sa.select(sa.func.min(o2.c.version_us)).where(same).scalar_subquery()
        conn.execute(
            t.objects.update()
            .where(OBJ.collection_id == collection_id, OBJ.object_id.in_(chunk))
            .values(is_last=OBJ.version_us == hi, is_first=OBJ.version_us == lo)
        )


def delete(conn: sa.Connection, collection_id: str, pks: Sequence[int]) -> int:
    """Delete rows by pk, then fix the first/last flags of what remains of those objects."""
    if not pks:
        return 0
    oids = [
        r[0] for r in conn.execute(sa.select(OBJ.object_id).where(OBJ.pk.in_(pks)).distinct()).all()
    ]
    conn.execute(t.audience.delete().where(t.audience.c.object_pk.in_(pks)))
    n = conn.execute(t.objects.delete().where(OBJ.pk.in_(pks))).rowcount
    _recompute_flags(conn, collection_id, oids)
    return int(n or 0)
