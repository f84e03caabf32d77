"""``mamori respond`` end to end on a real patrol report: plan (JSON and table), approve, reject,
list, expire, audit verify; bad input as one line and an exit code, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from mamori.cli import app
from mamori.respond.tables import audit
from mamori.store import Store

from .conftest import POLICY

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["respond", *args], env={"COLUMNS": "200"})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.stdout, res.stderr


def test_plan_approve_list_expire_verify(
    db: str, policy_file: Path, sandcat_report: Path, sshguess_report: Path
) -> None:
    code, out, _ = run(
        "plan", str(sandcat_report), "--policy", str(policy_file), "--format", "json", "--db", db
    )
    assert code == 0
    plan = json.loads(out)
    for item in plan:
        assert {
            "id",
            "action",
            "target",
            "verdict",
            "reasons",
            "ttl",
            "state",
            "expires",
        } <= item.keys()
    verdicts = {(p["action"], p["target"]): p["verdict"] for p in plan}
    assert verdicts[("quarantine", "172.18.0.3")] == "needs_approval"
    assert verdicts[("block_ip", "172.18.0.2")] == "deny"
    pending = next(p for p in plan if p["verdict"] == "needs_approval")
    denied = next(p for p in plan if p["verdict"] == "deny")

    code, out, _ = run("plan", str(sshguess_report), "--policy", str(policy_file), "--db", db)
    assert code == 0 and "192.168.56.1" in out and "allow" in out  # the table for people
    assert "1 allowed, 0 awaiting a person's approval, 0 denied by the guard" in out

    code, _, err = run("approve", denied["id"], "--db", db)
    assert code == 1 and "only pending decisions can be approved" in err
    code, out, _ = run("approve", pending["id"], "--by", "alice", "--format", "json", "--db", db)
    assert code == 0
    (approved,) = json.loads(out)
    assert approved["state"] == "approved" and approved["by"] == "alice" and approved["expires"]

    code, out, _ = run("list", "--state", "approved", "--format", "json", "--db", db)
    assert {(e["action"], e["target"]) for e in json.loads(out)} == {
        ("quarantine", "172.18.0.3"),
        ("block_ip", "192.168.56.1"),
    }
    code, out, _ = run("expire", "--format", "json", "--db", db)
    assert code == 0 and json.loads(out) == []  # nothing is due yet

    code, out, _ = run("audit", "verify", "--db", db)
    assert code == 0 and out.startswith("audit log intact: ")
    head = out.split()[-1]
    assert run("audit", "verify", "--expect", head, "--db", db)[0] == 0

    with Store(db).begin() as conn:  # tamper: rewrite the second entry's body
        conn.execute(sa.update(audit).where(audit.c.seq == 2).values(body='{"seq": 2}'))
    code, _, err = run("audit", "verify", "--db", db)
    assert code == 1 and "audit log broken: entry 2" in err


def test_approve_rereads_the_policy_that_judged(
    db: str, policy_file: Path, sandcat_report: Path
) -> None:
    _, out, _ = run(
        "plan", str(sandcat_report), "--policy", str(policy_file), "--format", "json", "--db", db
    )
    pending = next(p for p in json.loads(out) if p["verdict"] == "needs_approval")
    policy_file.write_text(POLICY.replace("critical: [", "critical: [172.18.0.3, "))
    code, _, err = run("approve", pending["id"], "--db", db)
    assert (
        code == 1 and "denies it: target 172.18.0.3 touches protected 172.18.0.3 (critical)" in err
    )
    policy_file.write_text("protected: {own: [}")
    code, _, err = run("approve", pending["id"], "--db", db)
    assert code == 2 and "policy.yaml: not valid YAML" in err
    policy_file.write_text(POLICY)
    assert run("approve", pending["id"], "--db", db)[0] == 0


def test_reject(db: str, policy_file: Path, sandcat_report: Path) -> None:
    _, out, _ = run(
        "plan", str(sandcat_report), "--policy", str(policy_file), "--format", "json", "--db", db
    )
    pending = next(p for p in json.loads(out) if p["verdict"] == "needs_approval")
    code, out, _ = run("reject", pending["id"], "--by", "bob", "--format", "json", "--db", db)
    assert code == 0 and json.loads(out)[0]["state"] == "rejected"
    code, _, err = run("reject", pending["id"], "--db", db)
    assert code == 1 and "is rejected" in err


def test_bad_input_is_one_line(
    db: str, tmp_path: Path, policy_file: Path, sandcat_report: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("protected: {own: [10.0.0.0/8]}\nmax_ttl: forever\n")
    code, _, err = run("plan", str(sandcat_report), "--policy", str(bad), "--db", db)
    assert (
        code == 2
        and err.strip()
        == f"error: {bad}: max_ttl (line 2): 'forever' is not a duration (write e.g. 90s, 30m, 4h, 1d, 1d12h)"
    )
    code, _, err = run(
        "plan", str(tmp_path / "none.json"), "--policy", str(policy_file), "--db", db
    )
    assert code == 2 and "none.json: cannot read the file" in err
    profiles = tmp_path / "p.yaml"
    profiles.write_text("name: x\nfilters: [{}]\ndecisions: [{action: ban}]\n")
    code, _, err = run(
        "plan",
        str(sandcat_report),
        "--policy",
        str(policy_file),
        "--profiles",
        str(profiles),
        "--db",
        db,
    )
    assert code == 2 and "p.yaml: profile 'x': decisions[0].action" in err
    code, _, err = run("approve", "d-nope", "--db", db)
    assert code == 1 and "no decision 'd-nope'" in err
    code, _, err = run("list", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert code == 1 and err.startswith("error: state database:")
    for text in (err,):
        assert "Traceback" not in text
