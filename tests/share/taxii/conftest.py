"""Fixtures of the TAXII tests: a state database per test, partners, the app, real bundles."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mamori.share import partners
from mamori.store import Store
from mamori.web.app import create_app

TAXII = "application/taxii+json;version=2.1"
EXAMPLES = Path("threat-intel/stix2.1-examples/examples")


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Server tests add many partners; the hashing cost is a property of test_partners, not of
    every request test (the stored format and verification stay the same)."""
    monkeypatch.setattr(partners, "_SCRYPT", (2**4, 8, 1))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


@pytest.fixture
def app(store: Store, tmp_path: Path) -> FastAPI:
    a = create_app(store)
    a.state.intel_store = tmp_path / "intel"
    return a


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def headers(name: str, secret: str, **extra: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{secret}".encode()).decode()
    return {"Accept": TAXII, "Authorization": f"Basic {token}", **extra}


@pytest.fixture
def auth() -> Callable[..., dict[str, str]]:
    """``auth(name, secret, **more_headers)``: TAXII request headers for a partner."""
    return headers


@pytest.fixture
def examples(data_dir: Path) -> Callable[[str], list[dict[str, Any]]]:
    """``examples("threat-reports/apt1.json")``: the objects of a real OASIS example bundle."""

    def load(name: str) -> list[dict[str, Any]]:
        path = data_dir / EXAMPLES / name
        data = json.loads(path.read_text(encoding="utf-8"))
        return list(data["objects"]) if data.get("type") == "bundle" else [data]

    return load
