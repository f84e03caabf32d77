"""Every REST route's authorisation, table-driven: no credentials → 401, each role below the
route's → 403, the route's own role → success. A second test proves the table names every route."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mamori.web.auth import Role
from web.conftest import Accounts
from web.console.conftest import SSHGUESS, wait_run

ORDER = [Role.PARTNER, Role.ANALYST, Role.RESPONDER, Role.ADMIN]
Setup = Callable[[TestClient, Accounts, dict[str, str], Path], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # formatted with the world's ids
    role: Role
    ok: int = 200
    setup: Setup | None = None  # returns the request's keyword arguments
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _capture(data_dir: Path) -> dict[str, Any]:
    return {"json": {"captures": [str(data_dir / SSHGUESS)]}}


def _upload(data_dir: Path) -> dict[str, Any]:
    return {"files": {"capture": ("ssh.pcap", (data_dir / SSHGUESS).read_bytes())}}


def _evidence(
    client: TestClient, accounts: Accounts, world: dict[str, str], _: Path
) -> dict[str, Any]:
    r = client.post(f"/api/cases/{world['case']}/evidence", headers=accounts.headers("admin"))
    assert r.status_code == 201, r.text
    return {}


def _partner(
    client: TestClient, accounts: Accounts, world: dict[str, str], _: Path
) -> dict[str, Any]:
    body = {"name": "acme", "collections": ["shared"]}
    assert (
        client.post("/api/partners", json=body, headers=accounts.headers("admin")).status_code
        == 201
    )
    return {}


CASES = [
    Case("GET", "/api/auth/me", Role.ANALYST),
    Case("POST", "/api/auth/logout", Role.ANALYST, 204),
    Case("GET", "/api/runs", Role.ANALYST),
    Case("POST", "/api/runs", Role.ANALYST, 202, lambda c, a, w, d: _capture(d)),
    Case("POST", "/api/runs/upload", Role.ANALYST, 202, lambda c, a, w, d: _upload(d)),
    Case("GET", "/api/runs/{run}", Role.ANALYST),
    Case("GET", "/api/runs/{run}/report", Role.ANALYST),
    Case("GET", "/api/incidents", Role.ANALYST),
    Case("GET", "/api/incidents/{incident}", Role.ANALYST),
    Case("GET", "/api/alerts", Role.ANALYST),
    Case("GET", "/api/cases", Role.ANALYST),
    Case("POST", "/api/cases", Role.ANALYST, 201, kwargs={"json": {"incidents": ["{incident}"]}}),
    Case("GET", "/api/cases/{case}", Role.ANALYST),
    Case("POST", "/api/cases/{case}/notes", Role.ANALYST, 201, kwargs={"json": {"text": "seen"}}),
    Case("POST", "/api/cases/{case}/close", Role.ANALYST, kwargs={"json": {"reason": "done"}}),
    Case("GET", "/api/cases/{case}/evidence", Role.ANALYST),
    Case("POST", "/api/cases/{case}/evidence", Role.ANALYST, 201),
    Case("GET", "/api/cases/{case}/evidence/0.zip", Role.ANALYST, setup=_evidence),
    Case("GET", "/api/decisions", Role.ANALYST),
    Case("GET", "/api/decisions/{decision}", Role.ANALYST),
    Case("POST", "/api/decisions/{decision}/approve", Role.RESPONDER),
    Case("POST", "/api/decisions/{decision}/reject", Role.RESPONDER),
    Case("GET", "/api/intel", Role.ANALYST),
    Case(
        "POST",
        "/api/intel/import",
        Role.RESPONDER,
        201,
        kwargs={"files": {"feed": ("bad-hosts.txt", b"203.0.113.9\nevil.example\n")}},
    ),
    Case("GET", "/api/partners", Role.ADMIN),
    Case(
        "POST",
        "/api/partners",
        Role.ADMIN,
        201,
        kwargs={"json": {"name": "p1", "collections": ["c"]}},
    ),
    Case("POST", "/api/partners/acme/revoke", Role.ADMIN, setup=_partner),
    Case("POST", "/api/hunt", Role.ANALYST, kwargs={"json": {"sql": "SELECT count(*) FROM conn"}}),
    Case("GET", "/api/users", Role.ADMIN),
    Case(
        "POST",
        "/api/users",
        Role.ADMIN,
        201,
        kwargs={"json": {"name": "eve", "role": "analyst", "password": "pw"}},
    ),
    Case("DELETE", "/api/users/analyst", Role.ADMIN, 204),
    Case("POST", "/api/users/analyst/tokens", Role.ADMIN, 201, kwargs={"json": {"label": "x"}}),
]


def _fill(value: Any, world: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**world)
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_route_authorisation(
    case: Case, client: TestClient, accounts: Accounts, world: dict[str, str], data_dir: Path
) -> None:
    path = case.path.format(**world)
    kwargs = _fill(case.kwargs, world)
    if case.setup is not None:
        kwargs |= case.setup(client, accounts, world, data_dir)
    client.cookies.clear()
    r = client.request(case.method, path, **kwargs)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    for role in ORDER[: ORDER.index(case.role)]:
        r = client.request(case.method, path, headers=accounts.headers(role), **kwargs)
        assert r.status_code == 403, (role, r.text)
    r = client.request(case.method, path, headers=accounts.headers(case.role), **kwargs)
    assert r.status_code == case.ok, r.text
    if case.ok == 202:  # a started run: let it finish before the test's folders go
        wait_run(client.app.state.runs, r.json()["id"])  # type: ignore[attr-defined]


def test_the_table_names_every_api_route(app: Any) -> None:
    import re

    # From the published schema: this FastAPI keeps included routers unflattened in app.routes.
    paths = app.openapi()["paths"]
    routes = {
        (m.upper(), re.sub(r"\{[^}]+\}", "{}", p))
        for p, ops in paths.items()
        if p.startswith("/api/") and p != "/api/auth/login"
        for m in ops
    }
    assert len(routes) > 25
    table = {(c.method, re.sub(r"\{[^}]+\}", "{}", c.path)) for c in CASES}
    # Concrete names in the table (acme, analyst, 0.zip) stand for their template.
    concrete = {"/acme/": "/{}/", "/analyst": "/{}", "/0.zip": "/{}.zip"}
    for m, p in list(table):
        for a, b in concrete.items():
            p = p.replace(a, b)
        table.add((m, p))
    assert routes - table == set()
