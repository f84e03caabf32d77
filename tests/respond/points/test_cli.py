"""``mamori respond points …`` (enforce, render, bouncer keys) on a real patrol report; bad input is
one line and an exit code, never a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mamori.respond.ledger import Ledger
from mamori.respond.points.cli import app
from mamori.respond.policy import Policy
from mamori.store import Store

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


def test_enforce_render_and_bouncer_keys(
    db: str, tmp_path: Path, policy: Policy, sshguess_report: Path
) -> None:
    Ledger(Store(db), policy).plan(sshguess_report)
    attacker = json.loads(sshguess_report.read_text())["incidents"][0]["entities"]["attackers"][0]
    points = tmp_path / "points.yaml"
    points.write_text(f"blocklist-ip: {{path: {tmp_path / 'ip.txt'}}}\ncrowdsec: {{}}\n")

    code, stdout, _ = run("enforce", "--points", str(points), "--db", db, "--format", "json")
    assert code == 0
    assert {c["point"]: len(c["added"]) for c in json.loads(stdout)} == {
        "blocklist-ip": 1, "crowdsec": 1
    }  # fmt: skip
    assert (tmp_path / "ip.txt").read_text() == f"{attacker}\n"
    code, stdout, _ = run("enforce", "--points", str(points), "--db", db, "--format", "json")
    assert all(not c["added"] and not c["removed"] for c in json.loads(stdout))
    code, stdout, _ = run("enforce", "--points", str(points), "--db", db)
    assert code == 0 and "blocklist-ip" in stdout

    code, stdout, _ = run("render", "blocklist-ip", "--points", str(points), "--db", db)
    assert (code, stdout) == (0, f"{attacker}\n")
    code, stdout, _ = run("render", "crowdsec", "--points", str(points), "--db", db)
    assert [d["value"] for d in json.loads(stdout)["new"]] == [attacker]

    code, stdout, _ = run("bouncer", "add", "fw1", "--db", db)
    assert code == 0 and re.fullmatch(r"[0-9a-f]{32}\n", stdout)
    code, _, stderr = run("bouncer", "add", "fw1", "--db", db)
    assert code == 1 and "already exists" in stderr and "Traceback" not in stderr
    assert run("bouncer", "remove", "fw1", "--db", db)[0] == 0
    code, _, stderr = run("bouncer", "remove", "fw1", "--db", db)
    assert code == 1 and "no bouncer 'fw1'" in stderr


def test_bad_input_is_one_line(db: str, tmp_path: Path) -> None:
    points = tmp_path / "points.yaml"
    points.write_text("nftables: {tabel: x}\n")
    code, _, stderr = run("enforce", "--points", str(points), "--db", db)
    assert code == 2 and "unknown setting 'tabel'" in stderr and str(points) in stderr
    assert len(stderr.strip().splitlines()) == 1
    points.write_text(f"blocklist-ip: {{path: {tmp_path / 'ip.txt'}}}\n")
    code, _, stderr = run("render", "rpz", "--points", str(points), "--db", db)
    assert code == 2 and "no point 'rpz'" in stderr
