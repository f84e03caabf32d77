"""TAXII objects in the state database: adding versions, and paged queries done by the database.

Every read is one indexed range scan: the collection, the version flag (``is_last`` for the
default ``match[version]=last``), then ``date_added`` order from a keyset cursor. The TLP rule is
part of the same WHERE clause (:func:`visible_to`), so a page never holds an object its reader
may not see and paging never depends on the size of the collection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from mamori.share import tables as t
from mamori.share.taxii.rawsql import Conn, raw_rows
from mamori.share.taxii.timestamps import format_us, now_us, parse_us

OBJ = t.objects.c
AMBERS = ("amber", "amber+strict")
_CHUNK = 500
# TLP labels written into the SQL text (a fixed, known set): an ``IN`` over a bound list would be
# an "expanding" parameter, which SQLAlchemy renders into new SQL text on every execution.
_LABEL_SQL = {x: sa.literal_column(f"'{x}'") for x in ("clear", "green", *AMBERS)}


@dataclass(frozen=True)
class Reader:
    """Who reads: a partner's name and the TLPs it receives without being named (CLEAR/GREEN)."""

    partner: str
    open_tlps: tuple[str, ...] = ()


def _own_visible(obj: Any, opens: tuple[str, ...]) -> sa.ColumnElement[bool]:
    """One row's own release rule, over bound ``partner`` and ``provenance``; ``opens``: the
    labels (of CLEAR and GREEN) open to the reader."""
    # Correlated EXISTS, one primary-key probe per candidate row: ``pk IN (SELECT ...)`` would
    # make SQLite build the reader's whole audience list (~100k rows at 1M objects) per query.
    named = (
        sa.select(sa.literal(1))
        .where(t.audience.c.object_pk == obj.pk, t.audience.c.partner == sa.bindparam("partner"))
        .exists()
    )
    amber = obj.tlp.in_([_LABEL_SQL[x] for x in AMBERS])
    conds: list[sa.ColumnElement[bool]] = [
        sa.and_(amber, obj.provenance == sa.bindparam("provenance")),
        sa.and_(amber, obj.provenance == "local", named),
    ]
    if opens:
        conds.insert(0, obj.tlp.in_([_LABEL_SQL[x] for x in opens]))
    return sa.or_(*conds)


def visible_to(opens: tuple[str, ...]) -> sa.ColumnElement[bool]:
    """The release rule of share/tlp.py as SQL (tlp.may_release stays the final word per row).

    RED and unmarked rows are never visible; CLEAR/GREEN when open to the reader; AMBER and
    AMBER+STRICT of ours only when the reader is named on the row, and a partner's AMBER only back
    to that partner. And a row is visible only if no stored object it reaches is hidden.
    """
    ref = t.objects.alias("ref")
    hidden_ref = (
        sa.select(sa.literal(1))
        .select_from(t.closure.join(ref, ref.c.object_id == t.closure.c.ref_id))
        .where(t.closure.c.object_pk == OBJ.pk, sa.not_(_own_visible(ref.c, opens)))
    )
    return sa.and_(_own_visible(OBJ, opens), ~hidden_ref.exists())


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


# Positions of the leading columns of every page row (the caller's ``columns`` follow them).
PK, ADDED, REACHES, AUDIENCE, COLUMNS = 0, 1, 2, 3, 4


@dataclass
class Page:
    """Rows as plain tuples: ``pk, date_added_us, reaches, audience, *columns`` (read by
    position: building a named row per object cost more than the TLP rule applied to it)."""

    rows: list[Sequence[Any]]
    more: bool

    @property
    def first_added(self) -> int | None:
        return self.rows[0][ADDED] if self.rows else None

    @property
    def last_added(self) -> int | None:
        return self.rows[-1][ADDED] if self.rows else None


@dataclass(frozen=True)
class _Shape:
    """What a query's WHERE clause looks like, without its values: one statement per shape is
    built once and reused with bound values (building SQLAlchemy expressions per request would
    cost more than running them)."""

    last: bool
    first: bool
    stamps: bool
    all_versions: bool
    ids: bool
    types: bool
    specs: bool
    added_after: bool
    after: bool
    reader: bool
    opens: tuple[str, ...]
    columns: tuple[sa.ColumnElement[Any], ...]


@lru_cache(maxsize=512)
def _statement(shape: _Shape) -> sa.Select[Any]:
    conds: list[sa.ColumnElement[bool]] = [OBJ.collection_id == sa.bindparam("cid")]
    if not shape.all_versions:
        vs: list[sa.ColumnElement[bool]] = []
        if shape.last:
            vs.append(OBJ.is_last.is_(True))
        if shape.first:
            vs.append(OBJ.is_first.is_(True))
        if shape.stamps:
            vs.append(OBJ.version_us.in_(sa.bindparam("stamps", expanding=True)))
        conds.append(sa.or_(*vs) if len(vs) > 1 else vs[0])
    if shape.ids:
        conds.append(OBJ.object_id.in_(sa.bindparam("ids", expanding=True)))
    if shape.types:
        conds.append(OBJ.type.in_(sa.bindparam("types", expanding=True)))
    if shape.specs:
        conds.append(OBJ.spec_version.in_(sa.bindparam("specs", expanding=True)))
    if shape.added_after:
        conds.append(OBJ.date_added_us > sa.bindparam("added_after"))
    if shape.after:
        conds.append(
            sa.tuple_(OBJ.date_added_us, OBJ.pk)
            > sa.tuple_(sa.bindparam("after_added"), sa.bindparam("after_pk"))
        )
    if shape.reader:
        conds.append(visible_to(shape.opens))
    # pk, date_added_us, reaches, audience first: callers read them by position.
    reaches = sa.exists().where(t.closure.c.object_pk == OBJ.pk).label("reaches")
    return (
        sa.select(OBJ.pk, OBJ.date_added_us, reaches, _audience(OBJ), *shape.columns)
        .where(*conds)
        .order_by(OBJ.date_added_us, OBJ.pk)
        .limit(sa.bindparam("limit"))
    )


def page(
    conn: Conn,
    collection_id: str,
    q: Query,
    reader: Reader | None,
    columns: Sequence[sa.ColumnElement[Any]],
) -> Page:
    """One page of rows in ``date_added`` order (``limit`` + 1 fetched to know if there is more)."""
    stamps = [parse_us(v) for v in q.versions if v not in ("first", "last", "all")]
    opens = tuple(x for x in ("clear", "green") if reader and x in reader.open_tlps)
    shape = _Shape(
        last="last" in q.versions,
        first="first" in q.versions,
        stamps=bool(stamps),
        all_versions="all" in q.versions,
        ids=bool(q.ids),
        types=bool(q.types),
        specs=bool(q.spec_versions),
        added_after=q.added_after is not None,
        after=q.after is not None,
        reader=reader is not None,
        opens=opens,
        columns=tuple(columns),
    )
    params: dict[str, Any] = {"cid": collection_id, "limit": q.limit + 1}
    if stamps:
        params["stamps"] = stamps
    if q.ids:
        params["ids"] = list(q.ids)
    if q.types:
        params["types"] = list(q.types)
    if q.spec_versions:
        params["specs"] = list(q.spec_versions)
    if q.added_after is not None:
        params["added_after"] = q.added_after
    if q.after is not None:
        params["after_added"], params["after_pk"] = q.after
    if reader is not None:
        params["partner"] = reader.partner
        params["provenance"] = f"partner:{reader.partner}"
    if shape.stamps or shape.ids or shape.types or shape.specs:  # expanding IN lists
        if not isinstance(conn, sa.Connection):
            raise TypeError("match[...] filters need a SQLAlchemy connection")
        rows: list[Sequence[Any]] = list(conn.execute(_statement(shape), params).all())
    else:
        rows = raw_rows(conn, shape, _statement(shape), params)
    return Page(rows[: q.limit], len(rows) > q.limit)


def _audience(obj: Any) -> sa.Label[Any]:
    """The partners named on an AMBER row (its audience), comma-separated, read with the row
    (only AMBER rows look: the audience means nothing to the rule for any other TLP)."""
    named = (
        sa.select(sa.func.aggregate_strings(t.audience.c.partner, sa.literal_column("','")))
        .where(t.audience.c.object_pk == obj.pk)
        .scalar_subquery()
    )
    return sa.case((obj.tlp.in_([_LABEL_SQL[x] for x in AMBERS]), named)).label("audience")


_REF = t.objects.alias("ref")
_REACHED = (
    sa.select(_REF.c.pk, _REF.c.object_id, _REF.c.tlp, _REF.c.provenance, _audience(_REF.c))
    .join(_REF, _REF.c.object_id == t.closure.c.ref_id)
    .where(t.closure.c.object_pk == sa.bindparam("pk"))
)


def reached_rows(conn: Conn, pks: Sequence[int]) -> dict[int, list[Sequence[Any]]]:
    """For each row, the stored rows (every version) of the ids it reaches, with their audience:
    tuples ``pk, object_id, tlp, provenance, audience``.

    One cached statement per row (few rows of a page reach anything) rather than an expanding
    ``IN`` list whose SQL would be rendered anew each time."""
    return {pk: raw_rows(conn, "reached", _REACHED, {"pk": pk}) for pk in pks}


# --- writing ------------------------------------------------------------------------------------


@dataclass
class Item:
    """One object to add, with what the share stage decided about it."""

    obj: dict[str, Any]
    tlp: str  # clear | green | amber | amber+strict | red | unmarked
    provenance: str  # "local" or "partner:NAME"
    audience: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()  # ids it points at (object_marking_refs and created_by_ref aside)
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
                "_refs": it.refs,
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
    linked = [r for r in rows if r["_audience"] or r["_refs"]]
    direct: dict[int, set[str]] = {}
    if linked:
        keys = {(r["object_id"], r["version_us"]): r for r in linked}
        ids = sorted({k[0] for k in keys})
        found = []
        for i in range(0, len(ids), _CHUNK):
            found += conn.execute(
                sa.select(OBJ.pk, OBJ.object_id, OBJ.version_us).where(
                    OBJ.collection_id == collection_id, OBJ.object_id.in_(ids[i : i + _CHUNK])
                )
            ).all()
        pks = {(oid, vus): pk for pk, oid, vus in found if (oid, vus) in keys}
        named = [
            {"object_pk": pks[k], "partner": p} for k, r in keys.items() for p in r["_audience"]
        ]
        if named:
            conn.execute(t.audience.insert(), named)
        direct = {pks[k]: set(r["_refs"]) for k, r in keys.items() if r["_refs"]}
    _extend_closure(conn, direct)
    return outcomes


def _closure_of_ids(conn: sa.Connection, ids: set[str]) -> dict[str, set[str]]:
    """Stored closure of each of these ids (union over its versions)."""
    out: dict[str, set[str]] = {}
    idl = sorted(ids)
    for i in range(0, len(idl), _CHUNK):
        for oid, ref in conn.execute(
            sa.select(OBJ.object_id, t.closure.c.ref_id)
            .join(t.closure, t.closure.c.object_pk == OBJ.pk)
            .where(OBJ.object_id.in_(idl[i : i + _CHUNK]))
        ):
            out.setdefault(oid, set()).add(ref)
    return out


def _extend_closure(conn: sa.Connection, direct: dict[int, set[str]]) -> None:
    """Keep ``share_object_closure`` transitive after adding rows.

    ``direct``: the new rows' own references. A new row reaches its references and everything
    they reach; a stored row that already reached one of the new ids (stored before it, in any
    order) now also reaches what the new id reaches.
    """
    reach: dict[int, set[str]] = {}
    if direct:
        # What the referenced ids reach: stored closures plus the new rows' own references.
        new_refs: dict[str, set[str]] = {}
        pk_ids = dict(
            conn.execute(sa.select(OBJ.pk, OBJ.object_id).where(OBJ.pk.in_(list(direct)))).all()
        )
        for pk, refs in direct.items():
            new_refs.setdefault(pk_ids[pk], set()).update(refs)
        for pk, refs in direct.items():
            seen: set[str] = set()
            frontier = set(refs)
            while frontier:
                seen |= frontier
                stored = _closure_of_ids(conn, frontier)
                nxt: set[str] = set()
                for rid in frontier:
                    nxt |= stored.get(rid, set()) | new_refs.get(rid, set())
                frontier = nxt - seen
            reach[pk] = seen
        conn.execute(
            t.closure.insert(),
            [{"object_pk": pk, "ref_id": rid} for pk, ids in reach.items() for rid in ids],
        )
    # Upward: stored rows reaching a new id now reach that id's closure too.
    by_id: dict[str, set[str]] = {}
    if reach:
        pk_ids = dict(
            conn.execute(sa.select(OBJ.pk, OBJ.object_id).where(OBJ.pk.in_(list(reach)))).all()
        )
        for pk, ids in reach.items():
            by_id.setdefault(pk_ids[pk], set()).update(ids)
    if not by_id:
        return
    idl = sorted(by_id)
    have: dict[int, set[str]] = {}
    for i in range(0, len(idl), _CHUNK):
        for pk, rid in conn.execute(
            sa.select(t.closure.c.object_pk, t.closure.c.ref_id).where(
                t.closure.c.ref_id.in_(idl[i : i + _CHUNK])
            )
        ):
            have.setdefault(pk, set()).add(rid)
    adds = []
    for pk, reached in have.items():
        if pk in reach:
            continue
        want = set().union(*(by_id[r] for r in reached))
        current = {
            r[0]
            for r in conn.execute(sa.select(t.closure.c.ref_id).where(t.closure.c.object_pk == pk))
        }
        adds += [{"object_pk": pk, "ref_id": rid} for rid in want - current]
    if adds:
        conn.execute(t.closure.insert(), adds)


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
    conn.execute(t.closure.delete().where(t.closure.c.object_pk.in_(pks)))
    n = conn.execute(t.objects.delete().where(OBJ.pk.in_(pks))).rowcount
    _recompute_flags(conn, collection_id, oids)
    return int(n or 0)
