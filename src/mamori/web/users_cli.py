"""``mamori user``: console and API users (a thin door over :mod:`mamori.web.auth`).

Passwords are read from ``MAMORI_PASSWORD`` when set (for scripts and CI), else prompted twice
without echo; they are stored only as argon2id hashes. A token is printed once and never again.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from mamori.store import Store

app = typer.Typer(no_args_is_help=True, help="Console and API users, roles and tokens.")
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

ROLES = "analyst, responder, admin or partner"


def _store() -> Store:
    from mamori.store import Store

    return Store()


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error[/]: {message}", markup=True, highlight=False)
    return typer.Exit(code)


def _password() -> str:
    given = os.environ.get("MAMORI_PASSWORD")
    if given is not None:
        return given
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option("--role", "-r", help=f"Role: {ROLES}.")] = "analyst",
) -> None:
    """Add a user (password from MAMORI_PASSWORD, or prompted)."""
    from mamori.web import auth

    try:
        user = auth.add_user(_store(), name, role, _password())
    except auth.AuthError as e:
        raise _fail(str(e)) from None
    out.print(f"added {user.name} ({user.role.value})", highlight=False)


@app.command("password")
def user_password(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Set a user's password (ends their console sessions)."""
    from mamori.web import auth

    try:
        auth.set_password(_store(), name, _password())
    except auth.AuthError as e:
        raise _fail(str(e)) from None
    out.print(f"password of {name} changed", highlight=False)


@app.command("token")
def user_token(
    name: Annotated[str, typer.Argument(help="User name.")],
    label: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    revoke: Annotated[
        bool, typer.Option("--revoke", help="Revoke all of the user's tokens instead.")
    ] = False,
) -> None:
    """Print a new API token for NAME (shown only this once), or revoke all of them."""
    from mamori.web import auth

    store = _store()
    if auth.get_user(store, name) is None:
        raise _fail(f"no user {name!r}")
    if revoke:
        out.print(f"revoked {auth.revoke_tokens(store, name)} token(s) of {name}", highlight=False)
        return
    token = auth.new_token(store, name, label)
    typer.echo(token)


@app.command("list")
def user_list() -> None:
    """List users with their role and number of API tokens."""
    from mamori.web import auth

    table = Table("name", "role", "created", "tokens")
    users = auth.list_users(_store())
    for u in users:
        table.add_row(
            u["name"], u["role"], u["created"].isoformat(timespec="seconds"), str(u["tokens"])
        )
    out.print(table)
    out.print(f"{len(users)} user(s)", highlight=False)


@app.command("remove")
def user_remove(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Remove a user, their sessions and their tokens."""
    from mamori.web import auth

    try:
        auth.remove_user(_store(), name)
    except auth.AuthError as e:
        raise _fail(str(e)) from None
    out.print(f"removed {name}", highlight=False)
