"""One state database for every stage that keeps state, through SQLAlchemy Core.

Each stage declares its own tables on the shared ``metadata`` in its own ``tables`` module (the
store never describes a stage's rows); opening a store imports those modules and creates what is
missing, so a fresh SQLite file or an empty PostgreSQL database is ready without a migration step.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, MetaData, create_engine, event

metadata = MetaData()

# Stages whose tables live in the state database. A stage adds its module here, nothing else.
TABLE_MODULES = (
    "mamori.respond.tables",
    "mamori.cases.tables",
    "mamori.share.tables",
    "mamori.respond.points.crowdsec",  # the bouncers that pull the decision stream
    "mamori.web.tables",  # console users, sessions, API tokens
)


def default_url() -> str:
    """``MAMORI_STATE_URL`` if set (e.g. ``postgresql+psycopg://user@host/mamori``), else a SQLite
    file under the XDG data home, beside the intel store."""
    url = os.environ.get("MAMORI_STATE_URL")
    if url:
        return url
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'mamori' / 'state.db'}"


class Store:
    """A handle on the state database; cheap to create, one per command or per web app."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        if self.url.startswith("sqlite:///") and self.url != "sqlite:///:memory:":
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(self.url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        for name in TABLE_MODULES:
            importlib.import_module(name)
        metadata.create_all(self.engine)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    # WAL lets the web console read while a patrol writes; foreign keys are off by default in SQLite.
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
