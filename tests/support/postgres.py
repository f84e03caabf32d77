"""A real, throwaway PostgreSQL server for tests that must run against it (not a mock).

``postgres_url`` (session scope) runs ``initdb`` into a fresh directory, starts the cluster with
``pg_ctl`` on a free loopback port (Unix socket in the same directory, trust authentication on
loopback only), yields a SQLAlchemy URL to its ``postgres`` database and stops it after the
session. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` system
user (``runuser``), which the Debian package creates. A missing ``initdb`` or ``pg_ctl`` is a test
failure, never a skip (``scripts/setup-system`` installs them).

``fresh_database(url)`` creates an empty database on that server for one test and returns its URL,
so tests never see each other's rows. Use it from a conftest:

    from support.postgres import fresh_database, postgres_url  # noqa: F401
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

USER = "mamori"


def _tool(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        pytest.fail(f"{name} not found: install postgresql (scripts/setup-system)")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root needs the 'postgres' system user (apt-get install postgresql)")
    return ["runuser", "-u", "postgres", "--", *argv]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="mamori-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    env = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}

    def run(argv: list[str]) -> None:
        done = subprocess.run(
            _as_server_user(argv), env=env, capture_output=True, text=True, timeout=120
        )
        if done.returncode:
            pytest.fail(f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr[-2000:]}")

    run([initdb, "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync"])
    port = _free_port()
    opts = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
    )
    run([pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-o", opts, "-w", "start"])
    try:
        yield f"postgresql+psycopg://{USER}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            env=env,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """An empty database on the server of ``server_url``; returns its URL."""
    name = "t_" + uuid.uuid4().hex[:12]
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name
