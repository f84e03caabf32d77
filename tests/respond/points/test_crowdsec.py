"""The CrowdSec decision stream, pulled by the real pycrowdsec bouncer client and checked against
CrowdSec's local API schema (DecisionsStreamResponse / Decision)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pycrowdsec.client import QueryClient, StreamClient

from mamori.respond.decision import Action, Decision, enforcement_points
from mamori.respond.ledger import Ledger
from mamori.respond.points.crowdsec import CrowdsecStream, add_bouncer, go_duration
from mamori.respond.points.targets import PointError
from mamori.respond.policy import Policy
from mamori.store import Store
from mamori.web.app import create_app
from support.unbound import free_udp_port

# CrowdSec's swagger: required fields of a Decision, and Go's duration spelling.
REQUIRED = {"origin", "type", "scope", "value", "duration", "scenario"}
GO_DURATION = re.compile(r"^-?(?:(\d+)h)?(?:(\d+)m)?(\d+)s$")


def _d(target: str, action: Action = Action.block_ip, ttl: int = 3600, inc: str = "i") -> Decision:
    return Decision(action, target, "test", inc, 0.9, ttl)


def _name() -> str:
    """A bouncer name of its own: the shared PostgreSQL test database outlives one test."""
    return f"bouncer-{uuid.uuid4().hex[:8]}"


def _check_schema(item: dict) -> None:
    assert item.keys() >= REQUIRED
    assert isinstance(item["id"], int) and 0 < item["id"] < 2**53
    assert item["type"] == "ban" and item["origin"] == "mamori"
    assert item["scope"] in {"Ip", "Range"}
    assert GO_DURATION.match(item["duration"]), item["duration"]
    datetime.fromisoformat(item["until"].replace("Z", "+00:00"))


@given(st.floats(-(10**7), 10**7, allow_nan=False))
def test_go_duration_spells_whole_seconds(seconds: float) -> None:
    text = go_duration(seconds)
    m = GO_DURATION.match(text)
    assert m, text
    h, mi, s = (int(x or 0) for x in m.groups())
    assert (-1 if text.startswith("-") else 1) * (h * 3600 + mi * 60 + s) == int(seconds)


def test_registered_and_render_is_a_startup_answer() -> None:
    assert enforcement_points()["crowdsec"] is CrowdsecStream
    now = datetime.now(UTC)
    out = CrowdsecStream().render(
        [_d("192.0.2.7"), _d("198.51.100.0/24"), _d("evil.example", Action.block_domain)], now
    )
    body = json.loads(out)
    assert body["deleted"] == []
    assert [(d["scope"], d["value"]) for d in body["new"]] == [
        ("Ip", "192.0.2.7"),
        ("Range", "198.51.100.0/24"),
    ]
    for item in body["new"]:
        _check_schema(item)
    assert body["new"][0]["duration"] in {"1h0m0s", "59m59s"}


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store)) as c:
        yield c


def test_key_is_required(client: TestClient, store: Store) -> None:
    assert client.get("/v1/decisions/stream?startup=true").status_code == 403
    r = client.get("/v1/decisions/stream", headers={"X-Api-Key": "wrong"})
    assert r.status_code == 403
    name = _name()
    add_bouncer(store, name)
    with pytest.raises(PointError, match="already exists"):
        add_bouncer(store, name)


def test_stream_startup_then_deltas(client: TestClient, store: Store, policy: Policy) -> None:
    ledger = Ledger(store, policy)
    key = add_bouncer(store, _name())
    h = {"X-Api-Key": key}
    ledger.submit([_d("198.51.100.7"), _d("198.51.100.64/26", inc="r"),
                   _d("evil.example", Action.block_domain)])  # fmt: skip
    first = client.get("/v1/decisions/stream", params={"startup": "true"}, headers=h).json()
    assert sorted(d["value"] for d in first["new"]) == ["198.51.100.64/26", "198.51.100.7"]
    assert first["deleted"] == []
    for item in first["new"]:
        _check_schema(item)
    again = client.get("/v1/decisions/stream", headers=h).json()
    assert again == {"new": [], "deleted": []}  # nothing changed since the last pull

    ledger.submit([_d("198.51.100.9", ttl=60, inc="late")])
    later = client.get("/v1/decisions/stream", headers=h).json()
    assert [d["value"] for d in later["new"]] == ["198.51.100.9"]

    expired = ledger.expire(now=datetime.now(UTC) + timedelta(seconds=61))
    assert [d.target for d in expired] == ["198.51.100.9"]
    gone = client.get("/v1/decisions/stream", headers=h).json()
    assert [d["value"] for d in gone["deleted"]] == ["198.51.100.9"]
    scoped = client.get(
        "/v1/decisions/stream", params={"startup": "true", "scopes": "range"}, headers=h
    ).json()
    assert [d["value"] for d in scoped["new"]] == ["198.51.100.64/26"]


@pytest.fixture
def server(store: Store) -> Iterator[str]:
    port = free_udp_port()
    config = uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(5)


def test_the_pycrowdsec_bouncer_enforces_the_stream(
    server: str, store: Store, policy: Policy
) -> None:
    ledger = Ledger(store, policy)
    key = add_bouncer(store, _name())
    ledger.submit([_d("198.51.100.7", ttl=1), _d("198.51.100.64/26", inc="r")])
    bouncer = StreamClient(api_key=key, lapi_url=server)
    bouncer.cycle("true")  # one pull, as run() does first
    assert bouncer.get_action_for("198.51.100.7") == "ban"
    assert bouncer.get_action_for("198.51.100.70") == "ban"  # inside the range
    assert bouncer.get_action_for("198.51.100.8") is None
    time.sleep(1.2)  # the host ban's time runs out, before any `respond expire`
    bouncer.cycle("false")
    assert bouncer.get_action_for("198.51.100.7") is None
    assert bouncer.get_action_for("198.51.100.70") == "ban"
    live = QueryClient(api_key=key, lapi_url=server)
    assert live.get_action_for("198.51.100.65") == "ban"
    assert live.get_decisions_for("192.0.2.1") is None
