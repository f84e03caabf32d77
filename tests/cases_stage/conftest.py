"""Fixtures of the cases stage: a private state database and patrol reports to open cases from.

(``tests/cases/`` holds the detectors' golden cases, so this stage's tests live here.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mamori.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def incident(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"INC-{n:012x}",
        "title": f"incident {n}",
        "severity": "high",
        "confidence": 0.9,
        "techniques": ["T1071.001"],
        "entities": {"attackers": ["10.0.0.1"], "victims": ["10.0.0.2"], "domains": []},
        "first_seen": "2024-01-01T00:00:00+00:00",
        "last_seen": "2024-01-01T01:00:00+00:00",
        "alerts": [],
        **extra,
    }


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """A small report.json in the patrol's schema with three incidents."""
    path = tmp_path / "patrol" / "report.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "schema": "mamori.patrol.report/1",
                "inputs": [{"path": "/captures/a.pcap", "packets": 10, "bytes": 1000}],
                "incidents": [incident(1), incident(2), incident(3)],
            }
        )
    )
    return path


SANDCAT = "zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/sandcat.pcap"


@pytest.fixture(scope="session")
def sandcat_report(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A patrol over a Caldera (sandcat agent) C2 capture: report.json with its lake beside it."""
    from mamori.config import Settings
    from mamori.patrol import patrol

    out = tmp_path_factory.mktemp("sandcat-patrol")
    result = patrol([data_dir / SANDCAT], out / "lake", out, Settings())
    assert result.incidents, "the C2 capture must yield an incident to open a case from"
    return result.json_path
