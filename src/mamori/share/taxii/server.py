"""The TAXII 2.1 server (OASIS TAXII 2.1, sections 4 and 5), a router mounted under ``/taxii2/``.

Every endpoint authenticates a partner (HTTP Basic), checks the Accept header, and answers with
``application/taxii+json;version=2.1`` bodies; every failure is a TAXII error message with its
HTTP status. Reads go through :mod:`mamori.share.taxii.storage`, whose WHERE clause already applies
the TLP rule; :func:`mamori.share.tlp.may_release` then judges each row once more before it is
written, so no code path can serve an object its marking forbids.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _jstr
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from starlette.routing import Match

from mamori.share import partners as reg
from mamori.share import tables as t
from mamori.share.taxii import ingest, storage
from mamori.share.taxii.rawsql import Conn
from mamori.share.taxii.timestamps import format_us, parse_us
from mamori.share.tlp import ALL, DEFAULT_POLICY, ReleasePolicy, may_release
from mamori.store import Store

log = logging.getLogger(__name__)

MEDIA_TAXII = "application/taxii+json;version=2.1"
MEDIA_STIX = "application/stix+json;version=2.1"
API_ROOT = "mamori"
MAX_CONTENT_LENGTH = 10 * 1024 * 1024
MAX_PAGE = 1000
DEFAULT_PAGE = 100


class TaxiiError(Exception):
    """Answered as a TAXII error message (section 3.6.1) with this HTTP status."""

    TITLES: ClassVar[dict[int, str]] = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        406: "Not Acceptable",
        413: "Payload Too Large",
        415: "Unsupported Media Type",
        422: "Unprocessable Entity",
    }

    def __init__(self, status: int, description: str, headers: dict[str, str] | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.headers = headers or {}

    def response(self) -> Response:
        body = {
            "title": self.TITLES.get(self.status, "Error"),
            "description": self.description,
            "error_id": str(uuid.uuid4()),
            "http_status": str(self.status),
        }
        return Response(
            json.dumps(body), status_code=self.status, media_type=MEDIA_TAXII, headers=self.headers
        )


class TaxiiRoute(APIRoute):
    """A route whose TaxiiError becomes a TAXII error body (no app-wide handler needed)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except TaxiiError as err:
                return err.response()

        return guarded


router = APIRouter(prefix="/taxii2", route_class=TaxiiRoute, tags=["TAXII 2.1"])

Endpoint = Callable[..., Response]


class BareGet:
    """A GET endpoint as a bare ASGI app, for the paged reads partners poll.

    Why: FastAPI's per-request machinery (parameter solving, then a hop to a worker thread for a
    sync endpoint) cost more CPU than reading and sending a 100-object page. The page is read on
    the event loop: one indexed range scan of a few milliseconds at most, as a threaded server's
    worker would block on it. Errors are TAXII error bodies, as on every other route.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            response = self.endpoint(Request(scope, receive), **scope["path_params"])
        except TaxiiError as err:
            response = err.response()
        await response(scope, receive, send)


class BareGetFirst:
    """ASGI middleware: a GET for a :class:`BareGet` route goes straight to it.

    Why: behind the app's own stack (exception, telemetry and body-limit middleware, then every
    router's path matching) a 100-object page paid a sixth of its CPU before reaching its
    endpoint. The bare routes handle their own errors (TAXII error bodies), so nothing in that
    stack is theirs; every other request takes the ordinary way.
    """

    def __init__(self, app: Any) -> None:
        from mamori.share.taxii import fastget

        self.app = app
        self.routes = [r for r in router.routes if isinstance(getattr(r, "app", None), BareGet)]
        self.fast = fastget.serve

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            if await self.fast(scope, send):  # the plain successful page read, as raw ASGI
                return
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    await route.app({**scope, **child}, receive, send)
                    return
        await self.app(scope, receive, send)


def bare_get(path: str) -> Callable[[Endpoint], Endpoint]:
    """Register ``endpoint`` as a :class:`BareGet` route (in declaration order, like the rest)."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_route(
            router.prefix + path, BareGet(endpoint), methods=["GET"], include_in_schema=False
        )
        return endpoint

    return register


# --- request checks -----------------------------------------------------------------------------


def _media_ok(value: str, *, wildcard: bool) -> bool:
    """Does one media range name TAXII 2.1 (``version`` absent means the newest, 2.1)?"""
    parts = [p.strip() for p in value.split(";")]
    kind = parts[0].lower()
    params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    params = {k.strip().lower(): v.strip().strip('"') for k, v in params.items()}
    if params.get("q") in ("0", "0.0", "0.00", "0.000"):
        return False
    if kind == "application/taxii+json":
        return params.get("version", "2.1") == "2.1"
    return wildcard and kind in ("*/*", "application/*")


def check_accept(request: Request) -> None:
    accept = request.headers.get("accept")
    if accept is None:
        return  # no Accept header: any representation is acceptable (RFC 9110)
    if not any(_media_ok(r, wildcard=True) for r in accept.split(",")):
        raise TaxiiError(406, f"this server answers only {MEDIA_TAXII}; Accept was {accept!r}")


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def _policy(request: Request) -> ReleasePolicy:
    return getattr(request.app.state, "share_policy", None) or DEFAULT_POLICY


def authenticate(request: Request, conn: sa.Connection | None = None) -> reg.Partner:
    """The partner the request's HTTP Basic credentials belong to (read on ``conn``, the
    request's own connection, when it has one)."""
    challenge = {"WWW-Authenticate": 'Basic realm="mamori TAXII 2.1", charset="UTF-8"'}
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise TaxiiError(
            401, "HTTP Basic credentials of a registered partner are required", challenge
        )
    try:
        name, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise TaxiiError(401, "malformed Basic credentials", challenge) from None
    partner = reg.authenticate(_store(request), name, secret, conn)
    if partner is None:
        raise TaxiiError(401, "unknown partner, wrong credential, or revoked", challenge)
    return partner


def begin(request: Request, conn: sa.Connection | None = None) -> reg.Partner:
    """Authentication first (who is asking), then content negotiation."""
    partner = authenticate(request, conn)
    check_accept(request)
    return partner


def check_root(api_root: str) -> None:
    if api_root != API_ROOT:
        raise TaxiiError(404, f"no API root {api_root!r}")


def reader_for(partner: reg.Partner, policy: ReleasePolicy) -> tuple[storage.Reader, ReleasePolicy]:
    """The SQL reader and the per-partner release policy: CLEAR/GREEN open to this partner only
    when both the site policy and the partner's registration allow it."""
    opens: list[str] = []
    for level in ("clear", "green"):
        audience = getattr(policy, level)
        site_ok = audience == ALL or (not isinstance(audience, str) and partner.name in audience)
        if site_ok and level in partner.open_tlps:
            opens.append(level)
    mine = ReleasePolicy(
        clear=ALL if "clear" in opens else "none", green=ALL if "green" in opens else "none"
    )
    return storage.Reader(partner.name, tuple(opens)), mine


def collection_for(
    request: Request, partner: reg.Partner, collection_id: str
) -> tuple[str, reg.Grant]:
    """The collection's id and the partner's grant; collections it has no grant on do not exist
    for it (404, so their names are not revealed)."""
    for cid, grant in partner.grants.items():
        if collection_id in (cid, grant.alias):
            return cid, grant
    raise TaxiiError(404, f"no collection {collection_id!r}")


def _one(params: Any, key: str) -> str | None:
    values = params.getlist(key)
    return ",".join(values) if values else None


def _csv(params: Any, key: str) -> tuple[str, ...]:
    raw = _one(params, key)
    return tuple(x.strip() for x in raw.split(",") if x.strip()) if raw else ()


def encode_next(added: int, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{added}:{pk}".encode()).decode().rstrip("=")


def decode_next(token: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        added, pk = (int(x) for x in raw.split(":"))
        if not (0 <= added < 2**63 and 0 <= pk < 2**63):
            raise ValueError("out of range")
        return added, pk
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise TaxiiError(400, f"next {token!r} is not a token this server issued") from None


def parse_query(
    request: Request, allowed: tuple[str, ...], default_version: str = "last"
) -> storage.Query:
    """Filters of section 3.4 (``added_after``, ``limit``, ``next``, ``match[...]``)."""
    p = request.query_params
    limit = DEFAULT_PAGE
    if (raw := p.get("limit")) is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise TaxiiError(400, f"limit {raw!r} is not an integer") from None
        if limit < 1:
            raise TaxiiError(400, "limit must be a positive integer")
    added_after = None
    if (raw := p.get("added_after")) is not None:
        try:
            added_after = parse_us(raw)
        except ValueError:
            raise TaxiiError(400, f"added_after {raw!r} is not a timestamp") from None
    versions = _csv(p, "match[version]") if "version" in allowed else ()
    for v in versions:
        if v not in ("first", "last", "all"):
            try:
                parse_us(v)
            except ValueError:
                raise TaxiiError(
                    400, f"match[version] {v!r} is not first, last, all or a timestamp"
                ) from None
    nxt = p.get("next")
    return storage.Query(
        added_after=added_after,
        ids=_csv(p, "match[id]") if "id" in allowed else (),
        types=_csv(p, "match[type]") if "type" in allowed else (),
        versions=versions or (default_version,),
        spec_versions=_csv(p, "match[spec_version]") if "spec_version" in allowed else (),
        limit=min(limit, MAX_PAGE),
        after=decode_next(nxt) if nxt else None,
    )


def _respond(
    body: dict[str, Any] | str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return Response(text, status_code=status, media_type=MEDIA_TAXII, headers=headers)


Row = Sequence[Any]
# Every page is read with these columns first (after storage's pk, date_added_us, reaches and
# audience), then what the endpoint serves: rows are read by position.
LEAD = (t.objects.c.object_id, t.objects.c.tlp, t.objects.c.provenance)
OBJECT_COLUMNS = (*LEAD, t.objects.c.body)  # GET objects
MANIFEST_COLUMNS = (*LEAD, t.objects.c.version, t.objects.c.spec_version)  # GET manifest
OID, TLP, PROV, EXTRA = (
    storage.COLUMNS,
    storage.COLUMNS + 1,
    storage.COLUMNS + 2,
    storage.COLUMNS + 3,
)


def _page_headers(rows: list[Row]) -> dict[str, str]:
    if not rows:
        return {}
    return {
        "X-TAXII-Date-Added-First": format_us(rows[0][storage.ADDED]),
        "X-TAXII-Date-Added-Last": format_us(rows[-1][storage.ADDED]),
    }


@lru_cache(maxsize=4096)
def _verdict(
    tlp: str, provenance: str, named: str | None, partner: str, policy: ReleasePolicy
) -> tuple[bool, str]:
    """tlp.may_release for one stored row's marking, origin and AMBER audience, remembered: a
    collection holds few distinct (TLP, origin, audience) triples and the rule is a pure
    function of them, the partner and the site policy."""
    audience = tuple(sorted(named.split(","))) if named else ()
    origin = provenance.removeprefix("partner:") if provenance != "local" else None
    verdict = may_release(
        None if tlp == ingest.UNMARKED else tlp, partner, audience, policy, origin=origin
    )
    return bool(verdict), verdict.reason


def released_rows(conn: Conn, pg: storage.Page, partner: str, policy: ReleasePolicy) -> list[Row]:
    """The page's rows that tlp.may_release lets go, each with everything it reaches (all of
    them, unless the SQL rule and tlp.py disagree, which is logged as the bug it would be).

    Why again, when the SQL already applied the rule: it is the one rule of share/tlp.py, and a
    second, independent reading of it costs a dictionary look-up per row (:func:`_verdict`,
    behind a per-page memo: hashing the policy per row would cost more) and one primary-key
    read per row that references anything. A row's audience is NULL unless it is AMBER (the
    statement's ``CASE``), so (TLP, origin, audience) is the whole key."""
    if not pg.rows:
        return []
    reached = storage.reached_rows(conn, [r[0] for r in pg.rows if r[storage.REACHES]])
    memo: dict[tuple[str, str, str | None], tuple[bool, str]] = {}
    out = []
    for r in pg.rows:
        key = (r[TLP], r[PROV], r[storage.AUDIENCE])
        if (got := memo.get(key)) is None:
            got = memo[key] = _verdict(*key, partner, policy)
        if got[0] and not r[storage.REACHES]:
            out.append(r)
            continue
        bad = None if got[0] else (r[OID], got[1])
        for x in reached.get(r[0], ()) if bad is None else ():
            key = (x[2], x[3], x[4])  # pk, object_id, tlp, provenance, audience
            if (got := memo.get(key)) is None:
                got = memo[key] = _verdict(*key, partner, policy)
            if not got[0]:
                bad = (x[1], got[1])
                break
        if bad is None:
            out.append(r)
        else:  # the SQL rule let it through: a bug, never a leak
            log.error("TAXII: withheld %s from %s (%s: %s)", r[OID], partner, *bad)
    return out


def _envelope(rows: list[Row], more: bool, nxt: str | None, key: str, items: list[str]) -> str:
    head = '{"more":' + ("true" if more else "false")
    if more and nxt:
        head += ',"next":' + json.dumps(nxt)
    if not items:
        return head + "}"
    return head + f',"{key}":[' + ",".join(items) + "]}"


def _next_token(pg: storage.Page) -> str | None:
    if not pg.more or not pg.rows:
        return None
    return encode_next(pg.rows[-1][storage.ADDED], pg.rows[-1][storage.PK])


# --- server information (section 4) -------------------------------------------------------------


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + router.prefix


@router.get("/")
def discovery(request: Request) -> Response:
    begin(request)
    root = f"{_base(request)}/{API_ROOT}/"
    return _respond(
        {
            "title": "mamori TAXII 2.1",
            "description": "Threat intelligence shared by this mamori site, TLP enforced per partner.",
            "default": root,
            "api_roots": [root],
        }
    )


@router.get("/{api_root}/")
def api_root(request: Request, api_root: str) -> Response:
    begin(request)
    check_root(api_root)
    return _respond(
        {
            "title": "mamori",
            "description": "Collections this site shares with its partners.",
            "versions": [MEDIA_TAXII],
            "max_content_length": MAX_CONTENT_LENGTH,
        }
    )


@router.get("/{api_root}/status/{status_id}/")
def status(request: Request, api_root: str, status_id: str) -> Response:
    partner = begin(request)
    check_root(api_root)
    with _store(request).begin() as conn:
        body = conn.execute(
            sa.select(t.statuses.c.body).where(
                t.statuses.c.id == status_id, t.statuses.c.partner == partner.name
            )
        ).scalar()
    if body is None:
        raise TaxiiError(404, f"no status {status_id!r}")
    return _respond(body)


# --- collections (section 5) --------------------------------------------------------------------


def _collection_resource(conn: sa.Connection, cid: str, grant: reg.Grant) -> dict[str, Any]:
    row = conn.execute(sa.select(t.collections).where(t.collections.c.id == cid)).one()
    out: dict[str, Any] = {
        "id": row.id,
        "title": row.title,
        "alias": row.alias,
        "can_read": grant.can_read,
        "can_write": grant.can_write,
        "media_types": [MEDIA_STIX],
    }
    if row.description:
        out["description"] = row.description
    return out


@router.get("/{api_root}/collections/")
def collections(request: Request, api_root: str) -> Response:
    partner = begin(request)
    check_root(api_root)
    with _store(request).begin() as conn:
        items = [_collection_resource(conn, cid, g) for cid, g in sorted(partner.grants.items())]
    return _respond({"collections": items} if items else {})


@router.get("/{api_root}/collections/{collection_id}/")
def collection(request: Request, api_root: str, collection_id: str) -> Response:
    partner = begin(request)
    check_root(api_root)
    cid, grant = collection_for(request, partner, collection_id)
    with _store(request).begin() as conn:
        return _respond(_collection_resource(conn, cid, grant))


def _readable(
    request: Request, conn: sa.Connection, api_root: str, collection_id: str
) -> tuple[reg.Partner, str]:
    partner = begin(request, conn)
    check_root(api_root)
    cid, grant = collection_for(request, partner, collection_id)
    if not grant.can_read:
        raise TaxiiError(403, f"{partner.name!r} may not read collection {collection_id!r}")
    return partner, cid


def _read(request: Request) -> Any:
    """One connection for a whole read (the partner's row, the page, what its rows reach):
    a read needs no commit, and one pool checkout costs less than two."""
    return _store(request).engine.connect()


def manifest_item(r: Row) -> str:
    """One manifest record (section 5.3) of a page row, as ``json.dumps`` of the record would
    write it (four string fields: formatting them costs a fifth of building and dumping a dict)."""
    return (
        f'{{"id": {_jstr(r[OID])}, "date_added": "{format_us(r[storage.ADDED])}", "version": '
        f'{_jstr(r[EXTRA])}, "media_type": {_jstr("application/stix+json;version=" + r[EXTRA + 1])}}}'
    )


@bare_get("/{api_root}/collections/{collection_id}/manifest/")
def manifest(request: Request, api_root: str, collection_id: str) -> Response:
    with _read(request) as conn:
        partner, cid = _readable(request, conn, api_root, collection_id)
        q = parse_query(request, ("id", "type", "version", "spec_version"))
        reader, policy = reader_for(partner, _policy(request))
        pg = storage.page(conn, cid, q, reader, MANIFEST_COLUMNS)
        rows = released_rows(conn, pg, partner.name, policy)
    items = [manifest_item(r) for r in rows]
    return _respond(
        _envelope(rows, pg.more, _next_token(pg), "objects", items), headers=_page_headers(rows)
    )


def _objects_page(
    request: Request, conn: sa.Connection, cid: str, partner: reg.Partner, q: storage.Query
) -> Response:
    reader, policy = reader_for(partner, _policy(request))
    pg = storage.page(conn, cid, q, reader, OBJECT_COLUMNS)
    rows = released_rows(conn, pg, partner.name, policy)
    body = _envelope(rows, pg.more, _next_token(pg), "objects", [r[EXTRA] for r in rows])
    return _respond(body, headers=_page_headers(rows))


@bare_get("/{api_root}/collections/{collection_id}/objects/")
def get_objects(request: Request, api_root: str, collection_id: str) -> Response:
    with _read(request) as conn:
        partner, cid = _readable(request, conn, api_root, collection_id)
        q = parse_query(request, ("id", "type", "version", "spec_version"))
        return _objects_page(request, conn, cid, partner, q)


@router.post("/{api_root}/collections/{collection_id}/objects/")
async def add_objects(request: Request, api_root: str, collection_id: str) -> Response:
    partner = authenticate(request)
    check_accept(request)
    check_root(api_root)
    cid, grant = collection_for(request, partner, collection_id)
    if not grant.can_write:
        raise TaxiiError(403, f"{partner.name!r} may not write to collection {collection_id!r}")
    ctype = request.headers.get("content-type", "")
    if not _media_ok(ctype, wildcard=False):
        raise TaxiiError(415, f"Content-Type must be {MEDIA_TAXII}, not {ctype!r}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_CONTENT_LENGTH:
        raise TaxiiError(
            413, f"body of {declared} bytes exceeds max_content_length {MAX_CONTENT_LENGTH}"
        )
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_CONTENT_LENGTH:
            raise TaxiiError(413, f"body exceeds max_content_length {MAX_CONTENT_LENGTH}")
    try:
        envelope = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaxiiError(422, f"body is not JSON: {exc}") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("objects"), list):
        raise TaxiiError(422, "body is not a TAXII envelope (an object with an 'objects' list)")
    from starlette.concurrency import run_in_threadpool

    result = await run_in_threadpool(receive, request, partner, cid, envelope["objects"])
    return _respond(result, status=202)


def receive(request: Request, partner: reg.Partner, cid: str, objects: list[Any]) -> dict[str, Any]:
    """Validate, store and import what a partner POSTed; the status resource (section 4.3.1)."""
    requested = datetime.now(UTC)
    status_id = str(uuid.uuid4())
    failures: list[dict[str, Any]] = []
    good: list[dict[str, Any]] = []
    for obj in objects:
        problem = ingest.validate(obj)
        if problem is None:
            good.append(obj)
        else:
            oid = obj.get("id") if isinstance(obj, dict) else None
            ver = (obj.get("modified") or obj.get("created")) if isinstance(obj, dict) else None
            failures.append({"id": str(oid or ""), "version": str(ver or ""), "message": problem})
    with _store(request).begin() as conn:
        items = ingest.items_for(conn, cid, good, provenance=f"partner:{partner.name}")
        outcomes = storage.add(conn, cid, items)
        successes = [
            {"id": o.id, "version": o.version}
            | ({} if o.added else {"message": "already in the collection"})
            for o in outcomes
        ]
        body: dict[str, Any] = {
            "id": status_id,
            "status": "complete",
            "request_timestamp": format_us(int(requested.timestamp() * 1_000_000)),
            "total_count": len(objects),
            "success_count": len(successes),
            "failure_count": len(failures),
            "pending_count": 0,
        }
        if successes:
            body["successes"] = successes
        if failures:
            body["failures"] = failures
        conn.execute(
            t.statuses.insert().values(
                id=status_id, partner=partner.name, body=json.dumps(body), created=requested
            )
        )
    if good:
        intel = Path(getattr(request.app.state, "intel_store", None) or _default_intel())
        try:
            ingest.to_intel(partner.name, good, intel, status_id)
        except (ValueError, OSError) as exc:  # stored for TAXII; intel can be re-imported later
            log.warning("TAXII: %s's objects not imported into intel: %s", partner.name, exc)
    return body


def _default_intel() -> Path:
    from mamori.intel.schema import default_store

    return default_store()


@router.get("/{api_root}/collections/{collection_id}/objects/{object_id}/")
def get_object(request: Request, api_root: str, collection_id: str, object_id: str) -> Response:
    with _read(request) as conn:
        partner, cid = _readable(request, conn, api_root, collection_id)
        q = parse_query(request, ("version", "spec_version"))
        q = storage.Query(**{**q.__dict__, "ids": (object_id,)})
        resp = _objects_page(request, conn, cid, partner, q)
    if resp.body == b'{"more":false}' and q.after is None:
        raise TaxiiError(404, f"no object {object_id!r} in collection {collection_id!r}")
    return resp


@router.delete("/{api_root}/collections/{collection_id}/objects/{object_id}/")
def delete_object(request: Request, api_root: str, collection_id: str, object_id: str) -> Response:
    partner = begin(request)
    check_root(api_root)
    cid, grant = collection_for(request, partner, collection_id)
    if not (grant.can_read and grant.can_write):
        raise TaxiiError(
            403, f"{partner.name!r} needs read and write on {collection_id!r} to delete"
        )
    q = parse_query(request, ("version", "spec_version"), default_version="all")
    q = storage.Query(**{**q.__dict__, "ids": (object_id,), "limit": 10_000, "after": None})
    reader, policy = reader_for(partner, _policy(request))
    with _store(request).begin() as conn:
        pg = storage.page(conn, cid, q, reader, list(LEAD))
        rows = released_rows(conn, pg, partner.name, policy)
        if not rows:
            raise TaxiiError(404, f"no object {object_id!r} in collection {collection_id!r}")
        if any(r[PROV] != f"partner:{partner.name}" for r in rows):
            raise TaxiiError(403, f"{partner.name!r} may delete only objects it added")
        storage.delete(conn, cid, [r[storage.PK] for r in rows])
    return Response(status_code=200, media_type=MEDIA_TAXII)


@router.get("/{api_root}/collections/{collection_id}/objects/{object_id}/versions/")
def versions(request: Request, api_root: str, collection_id: str, object_id: str) -> Response:
    with _read(request) as conn:
        partner, cid = _readable(request, conn, api_root, collection_id)
        q = parse_query(request, ("spec_version",), default_version="all")
        q = storage.Query(**{**q.__dict__, "ids": (object_id,)})
        reader, policy = reader_for(partner, _policy(request))
        pg = storage.page(conn, cid, q, reader, [*LEAD, t.objects.c.version])
        rows = released_rows(conn, pg, partner.name, policy)
    if not rows and q.after is None:
        raise TaxiiError(404, f"no object {object_id!r} in collection {collection_id!r}")
    body = _envelope(
        rows, pg.more, _next_token(pg), "versions", [json.dumps(r[EXTRA]) for r in rows]
    )
    return _respond(body, headers=_page_headers(rows))


# Not in the OpenAPI document: it is no endpoint, and one operation per method under one name
# made FastAPI warn of duplicate operation ids on every schema build.
@router.api_route(
    "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
def not_found(request: Request, rest: str) -> Response:
    """Anything else under /taxii2/: a TAXII 404 (TAXII URLs end with '/': one is offered)."""
    begin(request)
    if rest and not rest.endswith("/") and request.method == "GET":
        return RedirectResponse(str(request.url.replace(path=request.url.path + "/")), 308)
    raise TaxiiError(404, f"no TAXII endpoint at /taxii2/{rest}")
