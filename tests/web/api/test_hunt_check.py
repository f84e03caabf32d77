"""The hunt's statement fence, as a property: whatever text comes in, ``check_select`` lets it
through only when DuckDB parses it as exactly one SELECT, and otherwise answers 400 (never
another error, which would be a 500)."""

from __future__ import annotations

import duckdb
import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st

from mamori.web.api.hunt import check_select

FRAGMENTS = st.sampled_from(
    [
        "SELECT 1",
        "select * from conn",
        "WITH a AS (SELECT 1) SELECT * FROM a",
        "FROM dns",
        "COPY conn TO '/tmp/x'",
        "ATTACH 'x.db'",
        "SET threads=1",
        "PRAGMA version",
        "INSERT INTO t VALUES (1)",
        "DROP TABLE conn",
        "CREATE TABLE t (a INT)",
        "INSTALL httpfs",
        "LOAD httpfs",
        "EXPORT DATABASE '/tmp/d'",
        "CALL pragma_version()",
        "DETACH x",
        ";",
        "--",
        "/*",
        "'",
        "(",
        ")",
        "\x00",
        "\n",
        " ",
    ]
)
TEXT = st.one_of(st.text(max_size=80), st.lists(FRAGMENTS, min_size=1, max_size=4).map(" ".join))


def _one_select(sql: str) -> bool:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return False
    return len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT


@given(TEXT)
def test_only_a_single_select_passes(sql: str) -> None:
    try:
        check_select(sql)
    except HTTPException as exc:
        assert exc.status_code == 400
        assert not _one_select(sql)
    else:
        assert _one_select(sql)


@pytest.mark.parametrize(
    "sql", ["SELECT 1", "with x as (select 2) select * from x", "FROM conn", "SELECT 1;"]
)
def test_selects_pass(sql: str) -> None:
    check_select(sql)
