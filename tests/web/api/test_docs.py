"""docs/api.md names every REST route the app publishes, with the role the route really needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from web.api.test_routes import CASES

DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def _documented() -> dict[tuple[str, str], str]:
    rows = re.findall(
        r"^\| `(GET|POST|PUT|PATCH|DELETE) (/api/[^`]+)` \| (\S+) \|", DOC.read_text(), re.M
    )
    return {(m, re.sub(r"\{[^}]+\}", "{}", p)): role for m, p, role in rows}


def test_every_route_is_documented(app: Any) -> None:
    documented = _documented()
    assert len(documented) > 25
    published = {
        (m.upper(), re.sub(r"\{[^}]+\}", "{}", p))
        for p, ops in app.openapi()["paths"].items()
        if p.startswith("/api/")
        for m in ops
    }
    assert published - set(documented) == set()
    assert set(documented) - published == set()


def test_documented_roles_are_the_tested_ones() -> None:
    documented = _documented()
    concrete = {"/acme/": "/{}/", "/analyst": "/{}", "/0.zip": "/{}.zip"}
    for case in CASES:
        path = re.sub(r"\{[^}]+\}", "{}", case.path)
        for a, b in concrete.items():
            path = path.replace(a, b)
        assert documented[(case.method, path)] == case.role.value, case.id
