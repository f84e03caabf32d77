"""Users (admin): list, add, remove, issue an API token. The same functions as ``mamori user``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from mamori.web import auth
from mamori.web.api.deps import PROTECTED, Admin, fail, store

router = APIRouter(prefix="/api/users", tags=["users"], responses=PROTECTED)


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: auth.Role
    password: str = Field(min_length=1, max_length=1024)


class TokenIn(BaseModel):
    label: str | None = Field(None, max_length=200)


@router.get("")
def list_users(request: Request, user: Admin) -> list[dict[str, Any]]:
    return auth.list_users(store(request))


@router.post("", status_code=201, responses={400: {}})
def add_user(body: UserIn, request: Request, user: Admin) -> dict[str, str]:
    try:
        added = auth.add_user(store(request), body.name, body.role, body.password)
    except auth.AuthError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"name": added.name, "role": added.role.value}


@router.delete("/{name}", status_code=204, responses={400: {}, 404: {}})
def remove_user(name: str, request: Request, user: Admin) -> None:
    if name == user.name:
        raise HTTPException(400, "an admin cannot remove themselves")
    try:
        auth.remove_user(store(request), name)
    except auth.AuthError as exc:
        fail(exc)


@router.post("/{name}/tokens", status_code=201, responses={404: {}})
def new_token(name: str, body: TokenIn, request: Request, user: Admin) -> dict[str, str]:
    """A new API token for ``name``: the answer is the only time it is shown."""
    try:
        return {"name": name, "token": auth.new_token(store(request), name, body.label)}
    except auth.AuthError as exc:
        fail(exc)
