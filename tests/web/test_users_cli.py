"""``mamori user``: add, list, token, password, remove, with clear errors and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from mamori.store import Store
from mamori.web import auth
from mamori.web import tables as t
from mamori.web.users_cli import app

runner = CliRunner()


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("MAMORI_STATE_URL", url)
    monkeypatch.setenv("MAMORI_PASSWORD", "s3cret-pass")
    return Store(url)


def test_add_list_token_remove(state: Store) -> None:
    r = runner.invoke(app, ["add", "alice", "--role", "responder"])
    assert r.exit_code == 0, r.output
    assert "alice (responder)" in r.output
    assert auth.verify_password(state, "alice", "s3cret-pass") == auth.User("alice", "responder")
    with state.begin() as conn:
        assert "s3cret-pass" not in conn.execute(sa.select(t.users.c.password)).scalar_one()

    r = runner.invoke(app, ["token", "alice", "--label", "ci"])
    assert r.exit_code == 0
    token = r.output.strip()
    assert auth.user_for_token(state, token) == auth.User("alice", "responder", via="token")

    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0
    assert "alice" in r.output and "responder" in r.output and "1 user(s)" in r.output
    assert token not in r.output

    r = runner.invoke(app, ["token", "alice", "--revoke"])
    assert "revoked 1 token(s)" in r.output
    assert auth.user_for_token(state, token) is None

    assert runner.invoke(app, ["remove", "alice"]).exit_code == 0
    assert auth.get_user(state, "alice") is None


def test_password_is_prompted_without_the_variable(
    state: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAMORI_PASSWORD")
    r = runner.invoke(app, ["add", "bob"], input="pw-one\npw-one\n")
    assert r.exit_code == 0, r.output
    assert "pw-one" not in r.output
    assert auth.verify_password(state, "bob", "pw-one") is not None
    r = runner.invoke(app, ["password", "bob"], input="pw-two\npw-two\n")
    assert r.exit_code == 0
    assert auth.verify_password(state, "bob", "pw-two") is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "x", "--role", "god"], "unknown role"),
        (["add", "bad name"], "bad user name"),
        (["remove", "ghost"], "no user 'ghost'"),
        (["token", "ghost"], "no user 'ghost'"),
        (["password", "ghost"], "no user 'ghost'"),
    ],
)
def test_errors_are_one_line(state: Store, args: list[str], message: str) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code == 1
    assert message in r.output
    assert "Traceback" not in r.output


def test_duplicate_user(state: Store) -> None:
    assert runner.invoke(app, ["add", "carol"]).exit_code == 0
    r = runner.invoke(app, ["add", "carol"])
    assert r.exit_code == 1 and "already exists" in r.output
