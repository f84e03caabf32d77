"""Reading a patrol report's incidents: refused with file, incident and field named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mamori.respond.incidents import ReportError, load_report, read_incidents


def test_a_real_report_is_read(sshguess_report: Path) -> None:
    (inc,) = [i for i in load_report(sshguess_report) if "T1110.001" in i.techniques]
    assert inc.id.startswith("INC-") and inc.attackers == ("192.168.56.1",)
    assert inc.alerts and inc.alerts[0].detector == "bruteforce.ssh"
    assert inc.alerts[0].src == "192.168.56.1"


def _report(**changes: object) -> dict:
    inc = {
        "id": "INC-000000000001",
        "title": "t",
        "severity": "high",
        "confidence": 0.9,
        "techniques": ["T1110"],
        "entities": {"attackers": ["5.6.7.8"], "victims": [], "domains": []},
        "alerts": [
            {"detector": "x", "techniques": [], "severity": "low", "confidence": 0.5, "src": None}
        ],
    }
    inc.update(changes)
    return {"incidents": [inc]}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"severity": "bad"}, "incidents[0] (INC-000000000001): severity must be one of"),
        ({"confidence": 2}, "confidence must be a number from 0 to 1"),
        ({"confidence": float("nan")}, "confidence must be a number from 0 to 1"),
        ({"id": ""}, "incidents[0]: id must be a non-empty string"),
        ({"entities": {"attackers": "5.6.7.8"}}, "entities: attackers must be a list of strings"),
        ({"alerts": [{"detector": "x", "severity": "low", "confidence": 0.5, "src": 7}]},
         "alerts[0]: src must be a string or null"),
    ],
)  # fmt: skip
def test_bad_incidents_are_named(changes: dict, message: str) -> None:
    with pytest.raises(ReportError) as e:
        read_incidents(_report(**changes), "r.json")
    assert str(e.value).startswith("r.json: ") and message in str(e.value)


def test_not_a_report(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{")
    with pytest.raises(ReportError, match=r"a.json: not JSON \(line 1"):
        load_report(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"alerts": []}))
    with pytest.raises(ReportError, match="no incidents"):
        load_report(tmp_path / "b.json")
    with pytest.raises(ReportError, match="cannot read"):
        load_report(tmp_path / "missing.json")
