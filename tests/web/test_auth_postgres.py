"""Users, tokens and sessions on a real PostgreSQL (the state database a team would share)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from mamori.store import Store
from mamori.web import auth
from mamori.web import tables as t
from mamori.web.app import create_app
from support.postgres import fresh_database, postgres_url  # noqa: F401  (fixture)


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Store]:  # noqa: F811  (the imported fixture)
    store = Store(fresh_database(postgres_url))
    yield store
    store.close()


def test_users_tokens_sessions_on_postgres(pg_store: Store) -> None:
    auth.add_user(pg_store, "ana", "responder", "pw-ana")
    token = auth.new_token(pg_store, "ana")
    assert auth.user_for_token(pg_store, token) == auth.User("ana", "responder", via="token")
    with pg_store.begin() as conn:
        assert conn.execute(sa.select(t.users.c.password)).scalar_one().startswith("$argon2id$")
    client = TestClient(create_app(pg_store), base_url="https://testserver")
    r = client.post("/api/auth/login", json={"username": "ana", "password": "pw-ana"})
    assert r.status_code == 200
    assert client.get("/api/auth/me").json()["name"] == "ana"
    with pg_store.begin() as conn:  # expiry is compared as an aware timestamp
        conn.execute(t.sessions.update().values(expires=datetime.now(UTC) - timedelta(seconds=1)))
    assert client.get("/api/auth/me").status_code == 401
    auth.remove_user(pg_store, "ana")
    assert auth.user_for_token(pg_store, token) is None
    assert auth.list_users(pg_store) == []


def test_nul_in_a_name_is_refused_not_a_database_error(pg_store: Store) -> None:
    with pytest.raises(auth.AuthError):
        auth.add_user(pg_store, "a\x00b", "analyst", "pw")
    client = TestClient(create_app(pg_store), base_url="https://testserver")
    r = client.post("/api/auth/login", json={"username": "a\x00b", "password": "pw"})
    assert r.status_code == 401
