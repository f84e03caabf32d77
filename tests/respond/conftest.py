"""Fixtures of the respond tests: a state database on SQLite *and* on a real PostgreSQL, a policy,
and real patrol reports made from shared captures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mamori.config import load_settings
from mamori.patrol import patrol
from mamori.respond.policy import Policy, parse_policy
from mamori.respond.tables import audit, audit_head, decisions
from mamori.store import Store
from support.postgres import fresh_database, postgres_url  # noqa: F401  (fixture)

# Captures whose patrol gives incidents the shipped profiles act on (tests/test_detection_real.py).
SANDCAT = "zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/sandcat.pcap"  # C2 beaconing
SSHGUESS = "zeek-btest/Traces/ssh/sshguess.pcap"  # SSH password guessing
ASYNCRAT = (  # a known C2 certificate: docs/respond.md's worked example
    "zeek-detector-pcaps/zeek-asyncrat-detector/testing/Traces/"
    "cd010953-5faf-4054-86be-58c020c3a532.pcap"
)
DNS_TUNNEL = "evtx-attack-samples/Command and Control/cmds over dns txt queries and reponses.pcap"

POLICY = """
protected:
  own: [172.18.0.0/24, 192.168.56.96/27, 2001:db8::/32, example.org]
  critical: [172.18.0.53, 192.0.2.25, mail.example.net]
  resolvers: [192.0.2.53]
  partners: [203.0.113.0/25, partner.example]
max_prefix: {ipv4: 24, ipv6: 48}
min_confidence: {default: 0.5, quarantine: 0.8}
approval: [quarantine, sinkhole]
max_per_minute: 100
max_ttl: {default: 24h, quarantine: 1h}
"""


@pytest.fixture
def policy() -> Policy:
    return parse_policy(POLICY, "test-policy.yaml")


@pytest.fixture(scope="session")
def respond_pg_url(postgres_url: str) -> str:  # noqa: F811  (the imported fixture)
    """One database for the session; each test empties this stage's tables (creating a database
    per test costs a second on a loaded machine)."""
    return fresh_database(postgres_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same tests against SQLite (the default) and a real PostgreSQL server."""
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        s = Store(request.getfixturevalue("respond_pg_url"))
        with s.begin() as conn:
            for table in (audit, audit_head, decisions):
                conn.execute(sa.delete(table))
    yield s
    s.close()


def _patrol(data_dir: Path, capture: str, out: Path) -> dict[str, Any]:
    result = patrol([data_dir / capture], out / "lake", out, load_settings(None))
    return json.loads(result.json_path.read_text())


@pytest.fixture(scope="session")
def sandcat_report(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("patrol-sandcat")
    _patrol(data_dir, SANDCAT, out)
    return out / "report.json"


@pytest.fixture(scope="session")
def sshguess_report(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("patrol-sshguess")
    _patrol(data_dir, SSHGUESS, out)
    return out / "report.json"


@pytest.fixture(scope="session")
def asyncrat_report(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("patrol-asyncrat")
    _patrol(data_dir, ASYNCRAT, out)
    return out / "report.json"


@pytest.fixture(scope="session")
def dns_tunnel_report(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("patrol-dns-tunnel")
    _patrol(data_dir, DNS_TUNNEL, out)
    return out / "report.json"
