"""Authentication and roles: passwords, tokens, sessions, CSRF, the login limit, role inclusion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from mamori.store import Store
from mamori.web import auth
from mamori.web import tables as t
from mamori.web.auth import Role, User, require

from .conftest import PASSWORD, Accounts


def _login(client: TestClient, name: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post("/api/auth/login", json={"username": name, "password": password})


def test_passwords_and_tokens_are_never_stored_in_clear(store: Store, accounts: Accounts) -> None:
    with store.begin() as conn:
        users = conn.execute(sa.select(t.users)).all()
        tokens = conn.execute(sa.select(t.tokens)).all()
    assert len(users) == len(Role)
    for row in users:
        assert row.password.startswith("$argon2id$")
        assert PASSWORD not in row.password
    stored = " ".join(str(v) for row in tokens for v in row)
    for token in accounts.tokens.values():
        assert token not in stored
        assert token[len(auth.TOKEN_PREFIX) :] not in stored


def test_sessions_store_only_the_cookie_hash(
    client: TestClient, store: Store, accounts: Accounts
) -> None:
    r = _login(client, "analyst")
    assert r.status_code == 200
    cookie = client.cookies[auth.SESSION_COOKIE]
    with store.begin() as conn:
        ids = [row.id for row in conn.execute(sa.select(t.sessions))]
    assert ids and cookie not in ids


def test_role_inclusion() -> None:
    order = [Role.ANALYST, Role.RESPONDER, Role.ADMIN]
    for i, have in enumerate(order):
        for j, need in enumerate(order):
            assert auth.includes(have, need) == (i >= j)
        assert not auth.includes(Role.PARTNER, have)
        assert not auth.includes(have, Role.PARTNER)
    assert auth.includes(Role.PARTNER, Role.PARTNER)


@pytest.fixture
def probe(store: Store) -> TestClient:
    """An app with one GET and one POST route per role, to test ``require`` alone."""
    app = FastAPI()
    app.state.store = store
    app.state.auth = auth.AuthSettings()
    app.include_router(auth.router)
    for role in (Role.ANALYST, Role.RESPONDER, Role.ADMIN):
        # A default, not Annotated: the string annotation could not see the loop's ``role``.
        def read(user: User = Depends(require(role))) -> dict[str, str]:  # noqa: B008
            return {"name": user.name, "via": user.via}

        app.get(f"/probe/{role.value}")(read)
        app.post(f"/probe/{role.value}")(read)
    return TestClient(app, base_url="https://testserver")


@pytest.mark.parametrize("need", [Role.ANALYST, Role.RESPONDER, Role.ADMIN])
def test_require_answers_401_403_or_lets_in(
    probe: TestClient, accounts: Accounts, need: Role
) -> None:
    assert probe.get(f"/probe/{need}").status_code == 401
    assert probe.get(f"/probe/{need}").headers["www-authenticate"] == "Bearer"
    for role in Role:
        r = probe.get(f"/probe/{need}", headers=accounts.headers(role))
        if auth.includes(role, need):
            assert r.status_code == 200, (role, need)
            assert r.json() == {"name": role.value, "via": "token"}
        else:
            assert r.status_code == 403, (role, need)


@pytest.mark.parametrize(
    "header", ["Bearer nope", "Bearer mamori_forged", "Basic YWRtaW46eA==", "Bearer ", "Token x"]
)
def test_bad_credentials_are_401(probe: TestClient, accounts: Accounts, header: str) -> None:
    assert probe.get("/probe/analyst", headers={"Authorization": header}).status_code == 401


def test_login_sets_secure_httponly_strict_cookies(client: TestClient, accounts: Accounts) -> None:
    r = _login(client, "responder")
    assert r.status_code == 200
    assert r.json()["role"] == "responder"
    cookies = {c.split("=", 1)[0]: c.lower() for c in r.headers.get_list("set-cookie")}
    session, csrf = cookies[auth.SESSION_COOKIE], cookies[auth.CSRF_COOKIE]
    for c in (session, csrf):
        assert "secure" in c and "samesite=strict" in c and "path=/" in c
    assert "httponly" in session
    assert "httponly" not in csrf
    assert r.json()["csrf_token"] == client.cookies[auth.CSRF_COOKIE]


def test_wrong_password_and_unknown_user_are_401(client: TestClient, accounts: Accounts) -> None:
    assert _login(client, "analyst", "wrong").status_code == 401
    assert _login(client, "nobody").status_code == 401
    assert auth.SESSION_COOKIE not in client.cookies


def test_csrf_guards_cookie_state_changes_not_token_ones(
    probe: TestClient, accounts: Accounts
) -> None:
    r = _login(probe, "admin")
    csrf = r.json()["csrf_token"]
    assert probe.get("/probe/admin").status_code == 200  # a safe method needs no token
    assert probe.post("/probe/admin").status_code == 403
    assert probe.post("/probe/admin", headers={auth.CSRF_HEADER: "forged"}).status_code == 403
    assert probe.post("/probe/admin", headers={auth.CSRF_HEADER: csrf}).status_code == 200
    form = {auth.CSRF_FIELD: csrf}
    assert probe.post("/probe/admin", data=form).status_code == 200
    assert probe.post("/probe/admin", data={auth.CSRF_FIELD: "x"}).status_code == 403
    # A bearer token is never sent by a browser on its own: no CSRF token needed.
    probe.cookies.clear()
    assert probe.post("/probe/admin", headers=accounts.headers("admin")).status_code == 200


def test_csrf_of_another_session_is_refused(client: TestClient, accounts: Accounts) -> None:
    other = _login(client, "analyst").json()["csrf_token"]
    client.cookies.clear()
    _login(client, "admin")
    r = client.post("/api/auth/logout", headers={auth.CSRF_HEADER: other})
    assert r.status_code == 403


def test_logout_ends_the_session(client: TestClient, accounts: Accounts) -> None:
    csrf = _login(client, "analyst").json()["csrf_token"]
    cookie = client.cookies[auth.SESSION_COOKIE]
    me = client.get("/api/auth/me")
    assert me.json() == {"name": "analyst", "role": "analyst", "via": "session", "csrf_token": csrf}
    assert client.post("/api/auth/logout", headers={auth.CSRF_HEADER: csrf}).status_code == 204
    client.cookies.set(auth.SESSION_COOKIE, cookie)  # replaying the old cookie does not work
    assert client.get("/api/auth/me").status_code == 401


def test_expired_session_is_401(client: TestClient, store: Store, accounts: Accounts) -> None:
    _login(client, "analyst")
    with store.begin() as conn:
        conn.execute(t.sessions.update().values(expires=datetime.now(UTC) - timedelta(seconds=1)))
    assert client.get("/api/auth/me").status_code == 401


def test_login_is_rate_limited_per_user(client: TestClient, accounts: Accounts) -> None:
    for _ in range(5):
        assert _login(client, "admin", "guess").status_code == 401
    r = _login(client, "admin")  # even the right password waits out the window
    assert r.status_code == 429
    assert 0 < int(r.headers["retry-after"]) <= 300
    assert _login(client, "analyst").status_code == 429  # same address, also limited


def test_login_is_rate_limited_per_address(app, store: Store, accounts: Accounts) -> None:  # type: ignore[no-untyped-def]
    # Spraying one password over many names from one address is stopped too.
    with TestClient(app, base_url="https://testserver", client=("192.0.2.7", 1234)) as c:
        for i in range(5):
            assert _login(c, f"user{i}", "guess").status_code == 401
        assert _login(c, "responder").status_code == 429
    with TestClient(app, base_url="https://testserver", client=("192.0.2.8", 1234)) as c:
        assert _login(c, "responder").status_code == 200


def test_limiter_window_passes() -> None:
    limiter = auth.LoginLimiter(max_failures=2, window=0.05)
    limiter.fail("k")
    assert limiter.retry_after("k") == 0
    limiter.fail("k")
    assert limiter.retry_after("k") >= 1
    import time

    time.sleep(0.06)
    assert limiter.retry_after("k") == 0


def test_success_clears_the_users_failures(client: TestClient, accounts: Accounts) -> None:
    for _ in range(4):
        _login(client, "responder", "guess")
    assert _login(client, "responder").status_code == 200
    limiter = client.app.state.auth.limiter  # type: ignore[attr-defined]
    assert limiter.retry_after("user:responder") == 0


def test_changed_password_ends_sessions(
    client: TestClient, store: Store, accounts: Accounts
) -> None:
    _login(client, "analyst")
    auth.set_password(store, "analyst", "a new one")
    assert client.get("/api/auth/me").status_code == 401
    assert auth.verify_password(store, "analyst", PASSWORD) is None
    assert auth.verify_password(store, "analyst", "a new one") == User("analyst", Role.ANALYST)


def test_removed_user_loses_tokens(store: Store, accounts: Accounts) -> None:
    auth.remove_user(store, "admin")
    assert auth.user_for_token(store, accounts.tokens["admin"]) is None
    assert auth.user_for_token(store, accounts.tokens["analyst"]) == User(
        "analyst", Role.ANALYST, via="token"
    )


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("bad name", "analyst", "x", "bad user name"),
        ("", "analyst", "x", "bad user name"),
        ("ok", "root", "x", "unknown role"),
        ("ok", "analyst", "", "must not be empty"),
    ],
)
def test_add_user_rejects_bad_input(
    store: Store, name: str, role: str, password: str, message: str
) -> None:
    with pytest.raises(auth.AuthError, match=message):
        auth.add_user(store, name, role, password)


def test_add_user_twice_is_refused(store: Store) -> None:
    auth.add_user(store, "a", "analyst", "x")
    with pytest.raises(auth.AuthError, match="already exists"):
        auth.add_user(store, "a", "admin", "y")
