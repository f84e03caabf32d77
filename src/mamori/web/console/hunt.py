"""Hunting over a run's lake with DuckDB SQL, fenced: the query may read that lake and nothing
else (no other file, no COPY TO, no extensions, no settings), returns at most ``limit`` rows and is
interrupted after ``timeout`` seconds. A console user's SQL is input from a person, so the fence is
DuckDB's own configuration, locked before the first statement of theirs runs.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb

from mamori.lake.query import LakeError, connect


class HuntError(ValueError):
    """A query that could not run: the lake is missing, the SQL is wrong, it took too long."""


def hunt(
    lake: Path, sql: str, limit: int = 1000, timeout: float = 20.0
) -> tuple[list[str], list[tuple[Any, ...]]]:
    if not sql.strip():
        raise HuntError("write a query first")
    try:
        con = connect(lake)
    except LakeError as exc:
        raise HuntError(str(exc)) from None
    try:
        root = str(Path(lake).resolve()).replace("'", "''")
        con.execute(f"SET allowed_directories = ['{root}/']")
        con.execute("SET enable_external_access = false")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET lock_configuration = true")
        timer = threading.Timer(timeout, con.interrupt)
        timer.start()
        try:
            cur = con.execute(sql)
            if cur.description is None:
                return [], []
            columns = [d[0] for d in cur.description]
            rows = cur.fetchmany(limit)
        except duckdb.InterruptException:
            raise HuntError(f"the query ran longer than {timeout:g} s and was stopped") from None
        except duckdb.Error as exc:
            raise HuntError(str(exc).strip()) from None
        finally:
            timer.cancel()
        return columns, rows
    finally:
        con.close()
