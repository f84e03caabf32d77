"""``mamori sigma check`` and ``run``: per-rule outcome, totals, JSON, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from mamori.cli import app

GOOD = {
    "title": "admin logon",
    "id": "6f1d7c2e-0000-4000-8000-00000000000a",
    "logsource": {"product": "windows", "service": "security"},
    "detection": {"sel": {"TargetUserName": "admin"}, "condition": "sel"},
    "level": "high",
}
UNMAPPED = {**GOOD, "id": "6f1d7c2e-0000-4000-8000-00000000000b", "logsource": {"product": "aix"}}


def rules(folder: Path) -> Path:
    folder.mkdir()
    (folder / "good.yml").write_text(yaml.safe_dump(GOOD))
    (folder / "unmapped.yml").write_text(yaml.safe_dump(UNMAPPED))
    (folder / "broken.yml").write_text("title: [unclosed\n")
    return folder


def test_check_reports_each_rule_with_reason_and_totals(tmp_path: Path) -> None:
    folder = rules(tmp_path / "rules")
    result = CliRunner().invoke(app, ["sigma", "check", str(folder)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(ln.startswith("compiles") and "good.yml" in ln and "Security" in ln for ln in lines)
    assert any("unmapped.yml: no pipeline source for logsource aix/-/-" in ln for ln in lines)
    assert any(ln.startswith("cannot") and "broken.yml" in ln for ln in lines)
    assert "1 of 3 rules compile" in result.stderr


def test_check_json(tmp_path: Path) -> None:
    folder = rules(tmp_path / "rules")
    result = CliRunner().invoke(app, ["sigma", "check", "--json", str(folder)])
    doc = json.loads(result.stdout)
    assert (doc["total"], doc["compiled"], doc["unusable"]) == (3, 1, 2)
    by_path = {Path(r["path"]).name: r for r in doc["rules"]}
    assert by_path["good.yml"]["compiles"] and by_path["good.yml"]["level"] == "high"
    assert not by_path["unmapped.yml"]["compiles"]
    assert "aix" in by_path["unmapped.yml"]["reason"]
    good = CliRunner().invoke(app, ["sigma", "check", str(folder / "good.yml")])
    assert good.exit_code == 0


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sigma", "check", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr
    assert "Traceback" not in result.output
    bad = tmp_path / "bad.yml"
    bad.write_text("sources: [{logsource: {product: x}, table: nowhere}]\n")
    result = CliRunner().invoke(app, ["sigma", "check", "-p", str(bad), str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown table 'nowhere'" in result.stderr


def test_run_over_a_lake(tmp_path: Path, data_dir: Path) -> None:
    case = (
        data_dir / "sigma/regression_data/rules/windows/builtin/security"
        / "win_security_explicit_credential_local_logon"
    )  # fmt: skip
    lake = tmp_path / "lake"
    ingest = CliRunner().invoke(app, ["ingest", str(case), "--lake", str(lake)])
    assert ingest.exit_code == 0, ingest.output
    rule = next((data_dir / "sigma/rules/windows/builtin/security").glob(
        "win_security_explicit_credential_local_logon*.yml"
    ))  # fmt: skip
    result = CliRunner().invoke(app, ["sigma", "run", str(rule), "--lake", str(lake), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(ln) for ln in result.stdout.splitlines()]
    assert [r["rule_id"] for r in rows] == ["e3c6d245-7b8f-4e2a-c17f-a9d0e5b38f62"]
    assert rows[0]["table"] == "winevt" and rows[0]["host"] == "swachchhanda"
