"""GET objects and GET manifest answered as raw ASGI messages, for the pages partners poll.

Why: a 100-object page costs the database about 0.3 ms; Starlette's request and response objects,
SQLAlchemy's connection object and the per-request parsing around them cost as much again. Here a
page is read on a pooled DB-API connection and sent as two ASGI messages whose headers and body
are byte for byte those of the ordinary endpoint (``tests/share/taxii/test_fastget.py`` compares
them).

Only the plain successful read is answered here: a partner this process has already verified
(its credential row is still read on every request, so revocation is immediate), an Accept
header naming TAXII 2.1 (or none), a collection it may read, and no ``match[...]`` filter.
Anything else (no or wrong credentials, a partner not yet verified here, an unacceptable Accept,
a filter, a bad ``limit``/``added_after``/``next``) is declined and goes to the ordinary endpoint
(:func:`server.get_objects`, :func:`server.manifest`), which answers it and its errors exactly as
before: this path can only ever agree with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from mamori.share import partners as reg
from mamori.share import tables as t
from mamori.share.taxii import server, storage
from mamori.share.taxii.rawsql import RawConn
from mamori.share.taxii.timestamps import format_us, parse_us
from mamori.share.tlp import DEFAULT_POLICY
from mamori.store import Store


class utf8(FunctionElement[bytes]):
    """A text column as its UTF-8 bytes, read without decoding it into a str.

    Why: one non-ASCII character in one object of a page (the OASIS examples have a few) makes
    the joined page a UCS-2 string, and joining and encoding it cost a fifth of the page."""

    type = sa.LargeBinary()
    inherit_cache = True


@compiles(utf8)
def _utf8_default(element: utf8, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS BLOB)"


@compiles(utf8, "postgresql")
def _utf8_postgresql(element: utf8, compiler: Any, **kw: Any) -> str:
    return f"convert_to({compiler.process(element.clauses, **kw)}, 'UTF8')"


_MEDIA = server.MEDIA_TAXII.encode("latin-1")
_KINDS = {
    "objects": (*server.LEAD, utf8(t.objects.c.body)),
    "manifest": server.MANIFEST_COLUMNS,
}
_MEMO_MAX = 1024
# Authorization header value -> (partner name, secret, its SHA-256), or None when malformed.
_credentials: dict[bytes, tuple[str, str, bytes] | None] = {}
# Accept header value -> does it take TAXII 2.1?
_accepts: dict[bytes, bool] = {}

Answer = tuple[list[tuple[bytes, bytes]], bytes]
# Per store, per thread: the SQLite connection the page reads use (see _connection).
_held: weakref.WeakKeyDictionary[Store, dict[int, tuple[RawConn, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _credential(header: bytes) -> tuple[str, str, bytes] | None:
    """What :func:`server.authenticate` reads from the header, remembered per header value."""
    if header in _credentials:
        return _credentials[header]
    got: tuple[str, str, bytes] | None = None
    scheme, _, value = header.decode("latin-1").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            raw = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raw = None
        if raw is not None:
            name, _, secret = raw.partition(":")
            got = (name, secret, hashlib.sha256(secret.encode()).digest())
    if len(_credentials) >= _MEMO_MAX:
        _credentials.clear()
    _credentials[header] = got
    return got


def _accepted(header: bytes | None) -> bool:
    """:func:`server.check_accept`'s verdict on the Accept header, remembered per value."""
    if header is None:
        return True
    if (ok := _accepts.get(header)) is None:
        text = header.decode("latin-1")
        ok = any(server._media_ok(r, wildcard=True) for r in text.split(","))
        if len(_accepts) >= _MEMO_MAX:
            _accepts.clear()
        _accepts[header] = ok
    return ok


def _query(raw: bytes) -> storage.Query | None:
    """:func:`server.parse_query` for ``limit``, ``added_after`` and ``next``; None for anything
    it would refuse and for any ``match[...]`` filter (those take the ordinary path)."""
    params: dict[str, str] = {}
    if raw:
        for k, v in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            if k.startswith("match["):
                return None
            params[k] = v  # the last value wins, as in Starlette's QueryParams.get
    limit = server.DEFAULT_PAGE
    added_after = after = None
    try:
        if (v := params.get("limit")) is not None:
            limit = int(v)
            if limit < 1:
                return None
        if (v := params.get("added_after")) is not None:
            added_after = parse_us(v)
        if v := params.get("next"):
            after = server.decode_next(v)
    except (ValueError, server.TaxiiError):
        return None
    return storage.Query(added_after=added_after, limit=min(limit, server.MAX_PAGE), after=after)


def _connection(store: Store) -> tuple[RawConn, Callable[[], None]]:
    """A DB-API connection for one read, and what to call when the read is done.

    SQLite: one connection per store and thread, taken from the pool once and kept (checking
    one out of the pool and back cost a tenth of a page). It reads in autocommit, one statement
    one snapshot, so it sees every commit of every other connection at its next statement;
    should a read ever leave a transaction open, it is rolled back, before and after each read.
    Other databases: the pool's connection, returned after the read."""
    engine = store.engine
    if engine.dialect.name != "sqlite":
        fairy = engine.raw_connection()
        return RawConn(fairy.dbapi_connection, engine.dialect), fairy.close
    mine = _held.get(store)
    if mine is None:
        mine = _held[store] = {}
    me = threading.get_ident()
    got = mine.get(me)
    if got is None:
        fairy = engine.raw_connection()
        fairy.detach()  # ours until the store is garbage: the pool never hands it out again
        got = mine[me] = (RawConn(fairy.dbapi_connection, engine.dialect), fairy)
    dbapi = got[0].dbapi

    def done() -> None:
        if dbapi.in_transaction:
            dbapi.rollback()

    done()  # never read inside a snapshot some earlier read left open
    return got[0], done


def answer(scope: dict[str, Any]) -> Answer | None:
    """Headers and body of a successful GET objects/manifest, or None to decline."""
    if scope.get("root_path"):
        return None
    parts = scope["path"].split("/")
    # "", "taxii2", api root, "collections", collection, objects|manifest, ""
    if len(parts) != 7 or parts[1] != "taxii2" or parts[3] != "collections" or parts[6]:
        return None
    columns = _KINDS.get(parts[5])
    if columns is None or parts[2] != server.API_ROOT or not parts[4]:
        return None
    authorization = accept = None
    for k, v in scope["headers"]:
        if k == b"authorization":
            if authorization is None:
                authorization = v
        elif k == b"accept" and accept is None:
            accept = v
    if authorization is None or not _accepted(accept):
        return None
    cred = _credential(authorization)
    q = _query(scope["query_string"])
    if cred is None or q is None:
        return None
    state = scope["app"].state
    store = state.store
    conn, done = _connection(store)
    try:
        partner = reg.known(store, cred[0], cred[2], conn)
        if partner is None:
            return None
        cid = None
        for gid, grant in partner.grants.items():
            if parts[4] in (gid, grant.alias):
                cid = gid if grant.can_read else None
                break
        if cid is None:
            return None
        reader, policy = server.reader_for(
            partner, getattr(state, "share_policy", None) or DEFAULT_POLICY
        )
        pg = storage.page(conn, cid, q, reader, columns)
        rows = server.released_rows(conn, pg, partner.name, policy)
    finally:
        done()
    if parts[5] == "manifest":
        items = [server.manifest_item(r).encode() for r in rows]
    else:
        items = [bytes(r[server.EXTRA]) for r in rows]  # psycopg may give a memoryview
    head = b'{"more":' + (b"true" if pg.more else b"false")
    if pg.more and pg.rows:
        token = server.encode_next(pg.rows[-1][storage.ADDED], pg.rows[-1][storage.PK])
        head += b',"next":"' + token.encode() + b'"'  # base64url: nothing to escape
    body = b"".join((head, b',"objects":[', b",".join(items), b"]}")) if rows else head + b"}"
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", _MEDIA)]
    if rows:
        headers[:0] = [
            (b"x-taxii-date-added-first", format_us(rows[0][storage.ADDED]).encode()),
            (b"x-taxii-date-added-last", format_us(rows[-1][storage.ADDED]).encode()),
        ]
    return headers, body


async def serve(scope: dict[str, Any], send: Any) -> bool:
    """Answer the request if it is a plain successful page read; False when declined."""
    got = answer(scope)
    if got is None:
        return False
    await send({"type": "http.response.start", "status": 200, "headers": got[0]})
    await send({"type": "http.response.body", "body": got[1]})
    return True
