"""Fixtures of the web door: a fresh state database, the app over it, and one user per role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from mamori.store import Store
from mamori.web import auth
from mamori.web.app import create_app

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Accounts:
    """A bearer token per role (the user of each is named after the role)."""

    tokens: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id still, with a small cost: the production profile takes ~0.5 s a hash on a loaded
    2-core machine, and these tests hash dozens of times (what is stored is checked, not speed)."""
    monkeypatch.setattr(
        auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


@pytest.fixture
def app(store: Store):  # type: ignore[no-untyped-def]
    return create_app(store)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    # https: the session cookies are Secure, and a client keeps them only for a secure origin.
    with TestClient(app, base_url="https://testserver") as c:
        yield c


@pytest.fixture
def accounts(store: Store) -> Accounts:
    tokens = {}
    for role in auth.Role:
        auth.add_user(store, role.value, role.value, PASSWORD)
        tokens[role.value] = auth.new_token(store, role.value, "tests")
    return Accounts(tokens)
