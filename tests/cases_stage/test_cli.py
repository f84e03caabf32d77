"""The case, keys and evidence commands: ids on stdout, one-line errors with exit codes, no
tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mamori.cli import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data home: state database and signing key of this test only."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("MAMORI_STATE_URL", raising=False)
    monkeypatch.delenv("MAMORI_SIGNING_KEY", raising=False)
    monkeypatch.delenv("MAMORI_KEY_PASSPHRASE", raising=False)
    monkeypatch.setenv("MAMORI_USER", "clerk carol")
    return tmp_path


def _ok(args: list[str]) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.stdout


def test_case_lifecycle(home: Path, report: Path) -> None:
    case_id = _ok(["case", "open", str(report), "-i", "INC-000000000002"]).strip()
    assert case_id.startswith("CASE-") and "\n" not in case_id
    _ok(["case", "note", case_id, "asked the ISP to preserve logs"])
    _ok(["case", "assign", case_id, "dave"])
    _ok(["case", "link", case_id, "DEC-42"])
    assert case_id in _ok(["case", "list"])
    shown = json.loads(_ok(["case", "show", case_id, "--json"]))
    assert shown["owner"] == "dave" and shown["status"] == "open"
    assert [i["id"] for i in shown["incidents"]] == ["INC-000000000002"]
    assert shown["notes"][0]["author"] == "clerk carol"
    assert [d["id"] for d in shown["decisions"]] == ["DEC-42"]
    assert shown["custody_intact"] and len(shown["custody"]) == 4
    _ok(["case", "close", case_id, "--reason", "handed to police"])
    assert case_id in _ok(["case", "list", "--status", "closed"])
    assert case_id not in _ok(["case", "list", "--status", "open"])
    assert "custody log: 5 entries, intact" in _ok(["case", "show", case_id])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["case", "show", "CASE-nope"], "no case CASE-nope"),
        (["case", "note", "CASE-nope", "x"], "no case CASE-nope"),
        (["case", "open", "missing.json"], "missing.json: no such file"),
        (["evidence", "build", "CASE-nope", "--out", "pkg"], "no case CASE-nope"),
        (["keys", "show"], "mamori keys generate"),
    ],
)
def test_errors_are_one_line_with_exit_code_1(
    home: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(home)
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_keys_commands(home: Path) -> None:
    made = _ok(["keys", "generate"])
    fingerprint = made.split("fingerprint ")[1].split()[0]
    assert fingerprint in _ok(["keys", "show"])
    pem = _ok(["keys", "export-public"])
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    _ok(["keys", "export-public", "-o", str(home / "op.pub.pem")])
    assert (home / "op.pub.pem").read_text() == pem
    res = runner.invoke(app, ["keys", "generate"])
    assert res.exit_code == 1 and "already exists" in res.output


def test_evidence_build_and_verify(home: Path, sandcat_report: Path) -> None:
    _ok(["keys", "generate"])
    case_id = _ok(["case", "open", str(sandcat_report)]).strip()
    pkg = home / "pkg"
    res = runner.invoke(app, ["evidence", "build", case_id, "--out", str(pkg)])
    assert res.exit_code == 0, res.output
    assert (home / "pkg.zip").is_file()
    for target in (pkg, home / "pkg.zip"):
        verdict = _ok(["evidence", "verify", str(target)])
        assert verdict.startswith("OK") and case_id in verdict
    logged = _ok(["evidence", "log", str(pkg), "transfer", "--to", "officer P"])
    assert logged.startswith("custody.transfer by clerk carol")
    assert "after sealing: custody.transfer by clerk carol" in _ok(
        ["evidence", "verify", str(home / "pkg.zip")]
    )
    res = runner.invoke(app, ["evidence", "log", str(pkg), "steal"])
    assert res.exit_code == 2 and "ACTION must be one of" in res.output
    (pkg / "case.json").write_text("{}")
    res = runner.invoke(app, ["evidence", "verify", str(pkg)])
    assert res.exit_code == 1
    assert "FAILED file: case.json: SHA-256" in res.stdout


def test_every_command_and_custody_action_is_documented() -> None:
    """docs/evidence.md is what a recipient and an operator read: nothing may be missing."""
    from mamori.cases.cli import app as case_app
    from mamori.cases.cli import evidence_app, keys_app
    from mamori.cases.custody import Action

    doc = (Path(__file__).parents[2] / "docs" / "evidence.md").read_text()
    for group, typer_app in (("case", case_app), ("evidence", evidence_app), ("keys", keys_app)):
        for command in typer_app.registered_commands:
            name = command.name or command.callback.__name__  # type: ignore[union-attr]
            assert f"mamori {group} {name}" in doc, f"mamori {group} {name} is undocumented"
    for action in Action:
        assert f"`custody.{action.value}`" in doc
