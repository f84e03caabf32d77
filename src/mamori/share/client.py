"""TAXII 2.1 client: pull a partner's new objects into intel, push ours filtered by TLP.

Why httpx and not taxii2-client: the pull must read the ``X-TAXII-Date-Added-Last`` header of
each page (taxii2-client returns bodies only), and one client library in the process is enough
(the web door already depends on httpx). taxii2-client stays in the test suite as the peer that
checks our server.

Outbound is data only (ARCHITECTURE section 1): the client talks to the one TAXII server a user
registered for a partner, never anywhere else.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from mamori.share import partners as reg
from mamori.share import tables as t
from mamori.share.taxii import ingest
from mamori.share.tlp import DEFAULT_POLICY, ReleasePolicy, filter_objects
from mamori.store import Store

MEDIA_TAXII = "application/taxii+json;version=2.1"
PAGE = 500
MAX_POST_BYTES = 4 * 1024 * 1024  # below every server's max_content_length we have met


class ClientError(RuntimeError):
    """A partner's server answered what we cannot use; the message says who, where and why."""


@dataclass
class PullResult:
    partner: str
    objects: int
    rejected: list[tuple[str, str]]
    indicators: int
    last_added: str | None
    bundle: Path | None


@dataclass
class PushResult:
    partner: str
    sent: int
    withheld: list[tuple[str, str]]
    succeeded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


class Remote:
    """One collection on a partner's TAXII 2.1 server."""

    def __init__(
        self,
        api_root: str,
        collection: str,
        user: str | None,
        password: str | None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_root = api_root if api_root.endswith("/") else api_root + "/"
        auth = httpx.BasicAuth(user, password or "") if user else None
        self.http = httpx.Client(
            auth=auth, timeout=timeout, headers={"Accept": MEDIA_TAXII}, transport=transport
        )
        self.collection_id = self._resolve(collection)
        self.objects_url = f"{self.api_root}collections/{self.collection_id}/objects/"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, url: str, params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            resp = self.http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise ClientError(f"{url}: {exc}") from None
        _check(resp, url)
        return resp

    def _resolve(self, collection: str) -> str:
        """A collection id, from an id, alias or title (TAXII clients need the id)."""
        body = self._get(f"{self.api_root}collections/").json()
        for c in body.get("collections") or []:
            if collection in (c.get("id"), c.get("alias"), c.get("title")):
                return str(c["id"])
        raise ClientError(f"{self.api_root}: no collection {collection!r} visible to us")

    def pages(self, added_after: str | None) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """(objects, X-TAXII-Date-Added-Last) per page, following ``next`` until ``more`` ends."""
        params: dict[str, Any] = {"limit": PAGE}
        if added_after:
            params["added_after"] = added_after
        while True:
            resp = self._get(self.objects_url, params)
            body = resp.json()
            yield list(body.get("objects") or []), resp.headers.get("X-TAXII-Date-Added-Last")
            if not body.get("more") or not body.get("next"):
                return
            params = {**params, "next": body["next"]}

    def post(self, objects: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """POST one envelope; the status resource the server returns."""
        data = json.dumps({"objects": list(objects)}, ensure_ascii=False).encode()
        try:
            resp = self.http.post(
                self.objects_url, content=data, headers={"Content-Type": MEDIA_TAXII}
            )
        except httpx.HTTPError as exc:
            raise ClientError(f"{self.objects_url}: {exc}") from None
        _check(resp, self.objects_url)
        return dict(resp.json())


def _check(resp: httpx.Response, url: str) -> None:
    if resp.status_code >= 400:
        try:
            err = resp.json()
            why = err.get("description") or err.get("title") or resp.text
        except ValueError:
            why = resp.text[:200]
        raise ClientError(f"{url}: HTTP {resp.status_code}: {why}")
    ctype = resp.headers.get("content-type", "").replace(" ", "")
    if resp.content and not ctype.startswith("application/taxii+json"):
        raise ClientError(f"{url}: answered {ctype!r}, not TAXII 2.1")


def remote_for(partner: reg.Partner, transport: httpx.BaseTransport | None = None) -> Remote:
    if not partner.remote_url or not partner.remote_collection:
        raise ClientError(
            f"partner {partner.name!r} has no TAXII server registered "
            "(partner add --url API_ROOT --remote-collection ID)"
        )
    return Remote(
        partner.remote_url,
        partner.remote_collection,
        partner.remote_user,
        partner.remote_password,
        transport=transport,
    )


def pull(
    store: Store,
    name: str,
    intel_store: Path,
    transport: httpx.BaseTransport | None = None,
) -> PullResult:
    """Fetch what the partner added since our last complete pull, validate it, import it into
    intel (provenance ``taxii:NAME``, TLP from its markings) and remember the new high-water
    mark only once everything is imported, so a failed pull is simply repeated."""
    partner = reg.get(store, name)
    if partner.revoked is not None:
        raise ClientError(f"partner {name!r} is revoked")
    good: list[dict[str, Any]] = []
    rejected: list[tuple[str, str]] = []
    last = partner.last_pull
    with remote_for(partner, transport) as remote:
        for objects, added_last in remote.pages(partner.last_pull):
            for obj in objects:
                problem = ingest.validate(obj)
                if problem is None:
                    good.append(obj)
                else:
                    rejected.append((str(obj.get("id", "?")), problem))
            if added_last:
                last = added_last
    imported = ingest.to_intel(name, good, intel_store, str(uuid.uuid4())) if good else None
    if last and last != partner.last_pull:
        reg.set_last_pull(store, name, last)
    return PullResult(
        name,
        len(good),
        rejected,
        imported.indicators if imported else 0,
        last,
        imported.path if imported else None,
    )


def collection_objects(
    store: Store, collection: str
) -> tuple[list[dict[str, Any]], dict[str, list[str]], dict[str, str]]:
    """The newest version of every object in one of our collections, with the partners named on
    each and, for what a partner sent us, its origin (so tlp.filter_objects can judge them)."""
    o = t.objects.c
    with store.begin() as conn:
        cid = conn.execute(
            sa.select(t.collections.c.id).where(
                sa.or_(t.collections.c.alias == collection, t.collections.c.id == collection)
            )
        ).scalar()
        if cid is None:
            raise ClientError(f"no collection {collection!r} here")
        rows = conn.execute(
            sa.select(o.pk, o.object_id, o.provenance, o.body)
            .where(o.collection_id == cid, o.is_last.is_(True))
            .order_by(o.date_added_us)
        ).all()
        named_rows = conn.execute(
            sa.select(o.object_id, t.audience.c.partner)
            .join(t.audience, t.audience.c.object_pk == o.pk)
            .where(o.collection_id == cid, o.is_last.is_(True))
        ).all()
    named: dict[str, list[str]] = {}
    for oid, p in named_rows:
        named.setdefault(oid, []).append(p)
    origins = {
        r.object_id: r.provenance.removeprefix("partner:")
        for r in rows
        if r.provenance.startswith("partner:")
    }
    return [json.loads(r.body) for r in rows], named, origins


def push(
    store: Store,
    name: str,
    objects: Sequence[dict[str, Any]],
    named: dict[str, list[str]] | None = None,
    origins: dict[str, str] | None = None,
    policy: ReleasePolicy | None = None,
    transport: httpx.BaseTransport | None = None,
) -> PushResult:
    """Send the objects TLP lets go to this partner (tlp.filter_objects), in envelopes that stay
    under the server's size limit; what is withheld is reported with its reason."""
    partner = reg.get(store, name)
    if partner.revoked is not None:
        raise ClientError(f"partner {name!r} is revoked")
    site = policy or DEFAULT_POLICY
    mine = ReleasePolicy(
        clear=site.clear if "clear" in partner.open_tlps else "none",
        green=site.green if "green" in partner.open_tlps else "none",
    )
    verdict = filter_objects(objects, name, mine, named=named or {}, origins=origins or {})
    result = PushResult(name, len(verdict.released), verdict.withheld)
    if not verdict.released:
        return result
    with remote_for(partner, transport) as remote:
        for batch in _batches(verdict.released):
            status = remote.post(batch)
            result.succeeded += int(status.get("success_count", 0))
            result.failed.extend(
                (str(f.get("id")), str(f.get("message", ""))) for f in status.get("failures") or []
            )
    return result


def _batches(objects: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for obj in objects:
        n = len(json.dumps(obj, ensure_ascii=False).encode()) + 1
        if batch and size + n > MAX_POST_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(obj)
        size += n
    if batch:
        yield batch
