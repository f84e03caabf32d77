"""Loading rule files: every file that cannot be used is kept with the reason."""

from __future__ import annotations

from pathlib import Path

import yaml

from mamori.detect.sigma.loader import load_rules

RULE = {
    "title": "t",
    "id": "6f1d7c2e-0000-4000-8000-0000000000c1",
    "logsource": {"product": "windows", "service": "security"},
    "detection": {"sel": {"A": "1"}, "condition": "sel"},
}


def test_rules_and_reasons(tmp_path: Path) -> None:
    (tmp_path / "ok.yml").write_text(yaml.safe_dump(RULE))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ok2.yaml").write_text(
        yaml.safe_dump({**RULE, "id": "6f1d7c2e-0000-4000-8000-0000000000c2"})
    )
    (tmp_path / "dup.yml").write_text("title: a\ntitle: b\n")
    (tmp_path / "bad_modifier.yml").write_text(
        yaml.safe_dump({**RULE, "detection": {"sel": {"A|nosuch": "1"}, "condition": "sel"}})
    )
    correlation = {
        "title": "c",
        "id": "6f1d7c2e-0000-4000-8000-0000000000c3",
        "correlation": {
            "type": "event_count",
            "rules": ["6f1d7c2e-0000-4000-8000-0000000000c1"],
            "group-by": ["A"],
            "timespan": "5m",
            "condition": {"gte": 10},
        },
    }
    (tmp_path / "corr.yml").write_text(yaml.safe_dump(correlation))
    (tmp_path / "notes.txt").write_text("not a rule")
    rules, bad = load_rules([tmp_path])
    assert sorted(p.name for p, _ in rules) == ["ok.yml", "ok2.yaml"]
    reasons = {Path(u.path).name: u.reason for u in bad}
    assert set(reasons) == {"dup.yml", "bad_modifier.yml", "corr.yml"}
    assert "Duplicate key" in reasons["dup.yml"]
    assert "nosuch" in reasons["bad_modifier.yml"]
    assert "correlation rules are not supported" in reasons["corr.yml"]


def test_unreadable_file(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yml"
    f.write_bytes(b"title: caf\xe9\n")
    rules, bad = load_rules([f])
    assert not rules and "cannot read" in bad[0].reason
