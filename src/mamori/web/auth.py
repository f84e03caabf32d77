"""Who is calling, and may they: users, roles, console sessions, API tokens, CSRF, login limits.

Every REST route states the least role it needs with ``Annotated[User, Depends(require(Role.X))]``; nothing else in a
route decides access. The API other modules build on:

* ``Role`` — ``analyst`` (read, triage, notes) < ``responder`` (approve/reject decisions; includes
  analyst) < ``admin`` (users, partners, policy; includes all). ``partner`` is TAXII only: it
  satisfies no REST role, so every ``require`` answers it 403.
* ``User`` — frozen dataclass ``(name, role, via)``; ``via`` is ``"session"`` or ``"token"``.
* ``current_user`` — FastAPI dependency: the caller from ``Authorization: Bearer <token>`` or else
  the ``mamori_session`` cookie; 401 (``WWW-Authenticate: Bearer``) when neither is valid. For a
  state-changing method (POST/PUT/PATCH/DELETE) authenticated by the cookie, the CSRF token must
  come back in the ``X-CSRF-Token`` header (or a ``csrf_token`` form field), else 403. Token
  requests are exempt (a browser never attaches a bearer token by itself).
* ``require(role)`` — dependency factory: ``current_user`` and then 403 unless ``user.role``
  includes ``role``. Returns the ``User``:
  ``user: Annotated[User, Depends(require(Role.RESPONDER))]``.
* ``optional_user`` — like ``current_user`` but ``None`` instead of 401 (for pages that redirect
  to the login form).
* Login: ``POST /api/auth/login`` (JSON ``{"username", "password"}``) → sets the session cookie
  (``mamori_session``: Secure, HttpOnly, SameSite=Strict, Path=/) and the CSRF cookie
  (``mamori_csrf``: readable by the page's script, Secure, SameSite=Strict) and answers
  ``{"name", "role", "csrf_token"}``; ``POST /api/auth/logout``; ``GET /api/auth/me``. A console
  form can do the same with ``login(request, response, name, password)`` (raises ``HTTPException``
  401/429). Five failures in five minutes for one user name, or from one client address, answer
  429 with ``Retry-After`` until the window passes (kept in the process, per app).
* Store functions (also what ``mamori user`` calls): ``add_user(store, name, role, password)``,
  ``remove_user``, ``list_users``, ``set_password``, ``get_user``, ``verify_password(store, name,
  password) -> User | None``, ``new_token(store, name, label=None) -> str`` (shown once, stored
  hashed), ``revoke_tokens(store, name)``, ``open_session(store, name) -> (cookie, csrf)``,
  ``close_session(store, cookie)``.

Cookies are Secure by default; ``AuthSettings(secure_cookies=False)`` (or the environment variable
``MAMORI_INSECURE_COOKIES=1``) drops the flag for a plain-HTTP origin that is not localhost.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Depends, HTTPException, Request, Response, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from mamori.store import Store
from mamori.web import tables as t

SESSION_COOKIE = "mamori_session"
CSRF_COOKIE = "mamori_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
TOKEN_PREFIX = "mamori_"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


class Role(enum.StrEnum):
    ANALYST = "analyst"
    RESPONDER = "responder"
    ADMIN = "admin"
    PARTNER = "partner"


# What each role may do on the REST API, as a rank: a role includes every role of lower rank.
# partner ranks below every REST role, so it passes no ``require``.
RANK = {Role.PARTNER: 0, Role.ANALYST: 1, Role.RESPONDER: 2, Role.ADMIN: 3}


def includes(have: Role | str, need: Role | str) -> bool:
    """Does a user of role ``have`` hold the rights of ``need``?"""
    h, n = Role(have), Role(need)
    return h == n or (RANK[n] > 0 and RANK[h] >= RANK[n])


class AuthError(ValueError):
    """A user-management request that cannot be done (unknown user, bad name or role, ...)."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    via: str = "session"  # or "token"


@dataclass
class AuthSettings:
    """Per-app knobs, kept on ``app.state.auth``."""

    secure_cookies: bool = field(
        default_factory=lambda: os.environ.get("MAMORI_INSECURE_COOKIES", "") not in ("1", "true")
    )
    session_lifetime: timedelta = timedelta(hours=12)
    max_failures: int = 5
    failure_window: float = 300.0  # seconds
    limiter: LoginLimiter | None = None

    def __post_init__(self) -> None:
        if self.limiter is None:
            self.limiter = LoginLimiter(self.max_failures, self.failure_window)


# --- passwords ----------------------------------------------------------------------------------

_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 low-memory profile (t=3, 64 MiB)
_dummy: dict[PasswordHasher, str] = {}


def _dummy_hash() -> str:
    """Verified against when the user does not exist, so that an unknown name costs as much as a
    wrong password and timing does not tell which names exist."""
    if _hasher not in _dummy:
        _dummy[_hasher] = _hasher.hash(secrets.token_hex(16))
    return _dummy[_hasher]


def hash_password(password: str) -> str:
    if not password:
        raise AuthError("a password must not be empty")
    return _hasher.hash(password)


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands timestamps back naive (they were written as UTC).
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- users --------------------------------------------------------------------------------------


def _name_ok(name: str) -> bool:
    return bool(name) and len(name) <= 64 and set(name) <= NAME_CHARS


def _check_name(name: str) -> None:
    if not _name_ok(name):
        raise AuthError(f"bad user name {name!r}: use 1-64 letters, digits and . _ @ -")


def _known_name(name: str) -> None:
    # A name no user can have is not looked up: PostgreSQL refuses a NUL byte in a parameter
    # with an error, where the answer is simply "no such user".
    if not _name_ok(name):
        raise AuthError(f"no user {name!r}")


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AuthError(
            f"unknown role {role!r}: choose one of {', '.join(r.value for r in Role)}"
        ) from None


def add_user(store: Store, name: str, role: str, password: str) -> User:
    """Create a user; ``AuthError`` if the name is taken or bad, the role unknown, the password empty."""
    _check_name(name)
    r = _role(role)
    hashed = hash_password(password)
    with store.begin() as conn:
        if conn.execute(sa.select(t.users.c.name).where(t.users.c.name == name)).first():
            raise AuthError(f"user {name!r} already exists")
        conn.execute(
            t.users.insert().values(name=name, role=r.value, password=hashed, created=_now())
        )
    return User(name, r)


def set_password(store: Store, name: str, password: str) -> None:
    """Change a password and end the user's sessions (a changed password logs everyone out)."""
    _known_name(name)
    hashed = hash_password(password)
    with store.begin() as conn:
        done = conn.execute(t.users.update().where(t.users.c.name == name).values(password=hashed))
        if not done.rowcount:
            raise AuthError(f"no user {name!r}")
        conn.execute(t.sessions.delete().where(t.sessions.c.user == name))


def remove_user(store: Store, name: str) -> None:
    """Delete a user with their sessions and tokens."""
    _known_name(name)
    with store.begin() as conn:
        conn.execute(t.sessions.delete().where(t.sessions.c.user == name))
        conn.execute(t.tokens.delete().where(t.tokens.c.user == name))
        if not conn.execute(t.users.delete().where(t.users.c.name == name)).rowcount:
            raise AuthError(f"no user {name!r}")


def get_user(store: Store, name: str) -> User | None:
    if not _name_ok(name):
        return None
    with store.begin() as conn:
        row = conn.execute(sa.select(t.users.c.role).where(t.users.c.name == name)).first()
    return User(name, Role(row.role)) if row else None


def list_users(store: Store) -> list[dict[str, Any]]:
    """Each user's name, role, creation time and number of API tokens (never a hash)."""
    counts = (
        sa.select(t.tokens.c.user, sa.func.count().label("n")).group_by(t.tokens.c.user).subquery()
    )
    q = (
        sa.select(t.users.c.name, t.users.c.role, t.users.c.created, counts.c.n)
        .select_from(t.users.outerjoin(counts, counts.c.user == t.users.c.name))
        .order_by(t.users.c.name)
    )
    with store.begin() as conn:
        return [
            {"name": r.name, "role": r.role, "created": _aware(r.created), "tokens": r.n or 0}
            for r in conn.execute(q)
        ]


def verify_password(store: Store, name: str, password: str) -> User | None:
    """The user if ``password`` is theirs, else None (same cost whether or not the name exists)."""
    row = None
    if _name_ok(name):
        with store.begin() as conn:
            row = conn.execute(
                sa.select(t.users.c.role, t.users.c.password).where(t.users.c.name == name)
            ).first()
    try:
        _hasher.verify(row.password if row else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(row.password):
        with store.begin() as conn:
            conn.execute(
                t.users.update()
                .where(t.users.c.name == name)
                .values(password=_hasher.hash(password))
            )
    return User(name, Role(row.role))


# --- API tokens ---------------------------------------------------------------------------------


def new_token(store: Store, name: str, label: str | None = None) -> str:
    """A new bearer token for ``name``; the only time it is seen in clear is this return value."""
    _known_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.begin() as conn:
        if not conn.execute(sa.select(t.users.c.name).where(t.users.c.name == name)).first():
            raise AuthError(f"no user {name!r}")
        conn.execute(
            t.tokens.insert().values(
                id=_sha(token), prefix=token[:14], user=name, label=label, created=_now()
            )
        )
    return token


def revoke_tokens(store: Store, name: str) -> int:
    """Revoke every API token of ``name``; how many there were."""
    if not _name_ok(name):
        return 0
    with store.begin() as conn:
        return conn.execute(t.tokens.delete().where(t.tokens.c.user == name)).rowcount


def user_for_token(store: Store, token: str) -> User | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    q = (
        sa.select(t.users.c.name, t.users.c.role)
        .select_from(t.tokens.join(t.users, t.users.c.name == t.tokens.c.user))
        .where(t.tokens.c.id == _sha(token))
    )
    with store.begin() as conn:
        row = conn.execute(q).first()
    return User(row.name, Role(row.role), via="token") if row else None


# --- sessions -----------------------------------------------------------------------------------


def open_session(
    store: Store, name: str, lifetime: timedelta = timedelta(hours=12)
) -> tuple[str, str]:
    """Start a console session: ``(cookie value, CSRF token)``; the row keeps only the cookie's hash."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = _now()
    with store.begin() as conn:
        conn.execute(t.sessions.delete().where(t.sessions.c.expires < now))  # sweep the stale
        conn.execute(
            t.sessions.insert().values(
                id=_sha(cookie), user=name, csrf=csrf, created=now, expires=now + lifetime
            )
        )
    return cookie, csrf


def close_session(store: Store, cookie: str) -> None:
    with store.begin() as conn:
        conn.execute(t.sessions.delete().where(t.sessions.c.id == _sha(cookie)))


def session_of(store: Store, cookie: str) -> tuple[User, str] | None:
    """The user and CSRF token of a live session, or None (unknown or expired)."""
    q = (
        sa.select(t.users.c.name, t.users.c.role, t.sessions.c.csrf, t.sessions.c.expires)
        .select_from(t.sessions.join(t.users, t.users.c.name == t.sessions.c.user))
        .where(t.sessions.c.id == _sha(cookie))
    )
    with store.begin() as conn:
        row = conn.execute(q).first()
    if row is None or _aware(row.expires) <= _now():
        return None
    return User(row.name, Role(row.role), via="session"), row.csrf


# --- login rate limit ---------------------------------------------------------------------------


class LoginLimiter:
    """Failed logins per key (``user:NAME``, ``addr:IP``) in a sliding window, in this process."""

    def __init__(self, max_failures: int = 5, window: float = 300.0) -> None:
        self.max_failures = max_failures
        self.window = window
        self._fails: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self._fails[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, *keys: str) -> int:
        """Seconds until a login for these keys may be tried again; 0 if it may now."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._trim(key, now)
                if len(q) >= self.max_failures:
                    wait = max(wait, q[0] + self.window - now)
        return int(wait) + 1 if wait > 0 else 0

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._trim(key, now).append(now)

    def succeed(self, user_key: str) -> None:
        with self._lock:
            self._fails.pop(user_key, None)


# --- FastAPI dependencies -----------------------------------------------------------------------


def settings(request: Request) -> AuthSettings:
    app_state = request.app.state
    if not hasattr(app_state, "auth"):
        app_state.auth = AuthSettings()
    return app_state.auth  # type: ignore[no-any-return]


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def _unauthorised(detail: str = "authentication required") -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def _csrf_ok(request: Request, expected: str) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent is not None and hmac.compare_digest(sent.encode(), expected.encode())


# Declared only so that the OpenAPI schema names the two ways in (``components.securitySchemes``);
# ``optional_user`` reads the header and cookie itself, with its own errors.
_bearer_scheme = HTTPBearer(auto_error=False, description="An API token: mamori user token NAME")
_cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="A console session (POST /api/auth/login)"
)


async def optional_user(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)] = None,
    _cookie: Annotated[str | None, Security(_cookie_scheme)] = None,
) -> User | None:
    """The caller, or None when the request carries no credentials at all.

    Bad credentials are still 401 and a cookie-authenticated state change without its CSRF token
    is still 403: only their absence is None.
    """
    store = _store(request)
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorised("use Authorization: Bearer <token>")
        user = user_for_token(store, token.strip())
        if user is None:
            raise _unauthorised("invalid token")
        return user
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    found = session_of(store, cookie)
    if found is None:
        raise _unauthorised("session expired or unknown; log in again")
    user, csrf = found
    if request.method not in SAFE_METHODS and not await _csrf_ok(request, csrf):
        raise HTTPException(403, f"missing or wrong CSRF token (send it in {CSRF_HEADER})")
    request.state.csrf = csrf
    return user


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    """The authenticated caller; 401 without credentials."""
    if user is None:
        raise _unauthorised()
    return user


def require(role: Role | str) -> Callable[..., Awaitable[User]]:
    """Dependency: the caller, who must hold ``role`` (403 otherwise, 401 if unauthenticated)."""
    need = Role(role)

    async def check(user: Annotated[User, Depends(current_user)]) -> User:
        if not includes(user.role, need):
            raise HTTPException(
                403, f"this needs the {need.value} role; {user.name} is {user.role}"
            )
        return user

    check.__name__ = f"require_{need.value}"
    return check


# --- login / logout -----------------------------------------------------------------------------


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def set_session_cookies(request: Request, response: Response, cookie: str, csrf: str) -> None:
    cfg = settings(request)
    age = int(cfg.session_lifetime.total_seconds())
    common: dict[str, Any] = {
        "max_age": age,
        "path": "/",
        "secure": cfg.secure_cookies,
        "samesite": "strict",
    }
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, **common)
    # Readable by the console's script, which echoes it in X-CSRF-Token; a cross-site page can
    # neither read it nor make the browser send the session cookie (SameSite=Strict).
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, **common)


def login(request: Request, response: Response, name: str, password: str) -> tuple[User, str]:
    """Check a password under the rate limit and open a session on ``response``; (user, csrf)."""
    cfg = settings(request)
    limiter = cfg.limiter
    assert limiter is not None
    keys = (f"user:{name}", f"addr:{_client(request)}")
    wait = limiter.retry_after(*keys)
    if wait:
        raise HTTPException(
            429, "too many failed logins; try again later", headers={"Retry-After": str(wait)}
        )
    user = verify_password(_store(request), name, password)
    if user is None:
        limiter.fail(*keys)
        raise HTTPException(401, "wrong user name or password")
    limiter.succeed(keys[0])
    if user.role is Role.PARTNER:
        raise HTTPException(403, "partner accounts are for TAXII only; they have no console")
    cookie, csrf = open_session(_store(request), user.name, cfg.session_lifetime)
    set_session_cookies(request, response, cookie, csrf)
    return user, csrf


def logout(request: Request, response: Response) -> None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        close_session(_store(request), cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    name: str
    role: Role
    via: str
    csrf_token: str | None = None


router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login", response_model=Me, responses={401: {}, 429: {}})
def login_route(creds: Credentials, request: Request, response: Response) -> Me:
    """Open a console session (cookies) from a user name and password."""
    user, csrf = login(request, response, creds.username, creds.password)
    return Me(name=user.name, role=user.role, via="session", csrf_token=csrf)


@router.post("/logout", status_code=204, response_class=Response)
async def logout_route(
    request: Request, response: Response, _: Annotated[User, Depends(require(Role.ANALYST))]
) -> None:
    """End this console session (a CSRF-checked state change like any other)."""
    logout(request, response)


@router.get("/me", response_model=Me, responses={401: {}})
async def me_route(request: Request, user: Annotated[User, Depends(require(Role.ANALYST))]) -> Me:
    """Who the credentials belong to (and, for a session, its CSRF token)."""
    return Me(
        name=user.name,
        role=user.role,
        via=user.via,
        csrf_token=getattr(request.state, "csrf", None),
    )
