"""Cached statements run on the DB-API cursor underneath a SQLAlchemy connection.

Why: for the reads partners poll (a page of objects, the partner's own row), SQLAlchemy's
per-execution work (parameter processing, result metadata, a Row per object) cost more than the
database's own work. The statement is still written with SQLAlchemy and compiled by it, once per
dialect, so SQLite and PostgreSQL get the same SQL they would otherwise; the rows come back as
the driver's tuples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa


class RawConn(NamedTuple):
    """A pooled DB-API connection with its dialect, for reads that need no SQLAlchemy
    :class:`~sqlalchemy.engine.Connection` around them (see :mod:`mamori.share.taxii.fastget`)."""

    dbapi: Any
    dialect: sa.Dialect


Conn = sa.Connection | RawConn


@dataclass
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # bind names in order (positional paramstyles), else None
    defaults: dict[str, Any]  # values SQLAlchemy bound itself (literals in the statement)


_compiled: dict[tuple[str, object], _Compiled] = {}


def raw_rows(conn: Conn, key: object, stmt: sa.Executable, params: dict[str, Any]) -> list[Any]:
    """Run ``stmt`` (named by the hashable ``key``) on the connection's own DB-API cursor,
    inside the connection's transaction, and return the driver's tuples.

    Only for statements without expanding ``IN`` lists and whose results need no conversion by
    SQLAlchemy (integers, text, booleans read for their truth).
    """
    dialect = conn.dialect
    c = _compiled.get((dialect.name, key))  # key: what names stmt (a _Shape, a name)
    if c is None:
        done = stmt.compile(dialect=dialect)
        given = done.construct_params(params)
        c = _Compiled(
            str(done),
            tuple(done.positiontup) if done.positional and done.positiontup else None,
            {k: v for k, v in given.items() if k not in params},
        )
        _compiled[(dialect.name, key)] = c
    args = {**c.defaults, **params}
    if isinstance(conn, RawConn):
        cur = conn.dbapi.cursor()
    else:
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(c.sql, [args[k] for k in c.order] if c.order is not None else args)
        return cur.fetchall()
    finally:
        cur.close()
