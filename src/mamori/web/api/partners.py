"""Sharing partners (admin): list, register (the credential is shown once), revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from mamori.share import partners as reg
from mamori.web.api.deps import PROTECTED, Admin, fail, store

router = APIRouter(prefix="/api/partners", tags=["partners"], responses=PROTECTED)


class PartnerIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    collections: list[str] = Field(min_length=1, max_length=32)
    can_read: bool = True
    can_write: bool = False
    open_tlps: list[str] | None = None


def partner_json(p: reg.Partner) -> dict[str, Any]:
    # Never the remote password: this answer is shown on screens and kept in logs.
    return {
        "name": p.name,
        "open_tlps": list(p.open_tlps),
        "created": p.created,
        "revoked": p.revoked,
        "collections": [
            {"id": g.collection_id, "alias": g.alias, "read": g.can_read, "write": g.can_write}
            for g in p.grants.values()
        ],
        "remote_url": p.remote_url,
        "last_pull": p.last_pull,
    }


@router.get("")
def list_partners(request: Request, user: Admin) -> list[dict[str, Any]]:
    return [partner_json(p) for p in reg.all_partners(store(request))]


@router.post("", status_code=201, responses={400: {}})
def add_partner(body: PartnerIn, request: Request, user: Admin) -> dict[str, Any]:
    """Register a partner for TAXII; the answer's ``secret`` is its credential, shown only now."""
    extra = {"open_tlps": tuple(body.open_tlps)} if body.open_tlps is not None else {}
    try:
        secret = reg.add(
            store(request), body.name, body.collections, body.can_read, body.can_write, **extra
        )
    except reg.PartnerError as exc:
        fail(exc)
    return partner_json(reg.get(store(request), body.name)) | {"secret": secret}


@router.post("/{name}/revoke", responses={404: {}})
def revoke_partner(name: str, request: Request, user: Admin) -> dict[str, Any]:
    """Revoke a partner: its credential stops working at once; its record stays."""
    try:
        reg.revoke(store(request), name)
    except reg.PartnerError as exc:
        fail(exc)
    return partner_json(reg.get(store(request), name))
