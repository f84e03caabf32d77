"""Hunting SQL is fenced to the run's lake: it reads the lake and nothing else on the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from mamori.web.console.hunt import HuntError, hunt


@pytest.fixture
def lake(patrolled: Path) -> Path:
    (run,) = [p for p in patrolled.iterdir() if (p / "lake").is_dir()]
    return run / "lake"


def test_a_query_reads_the_lake(lake: Path) -> None:
    cols, rows = hunt(lake, "SELECT count(*) AS n, count(DISTINCT orig_h) AS hosts FROM conn")
    assert cols == ["n", "hosts"] and rows[0][0] > 0


def test_the_row_limit_holds(lake: Path) -> None:
    _, rows = hunt(lake, "SELECT * FROM range(5000)", limit=10)
    assert len(rows) == 10


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "COPY (SELECT 1) TO '/tmp/mamori-hunt-escape.csv'",
        "SET enable_external_access = true",
        "INSTALL httpfs",
        "ATTACH '/tmp/mamori-hunt.db' AS x",
    ],
)
def test_nothing_outside_the_lake(lake: Path, sql: str) -> None:
    with pytest.raises(HuntError):
        hunt(lake, sql)
    assert not Path("/tmp/mamori-hunt-escape.csv").exists()


def test_a_long_query_is_stopped(lake: Path) -> None:
    with pytest.raises(HuntError, match="longer than"):
        hunt(lake, "SELECT count(*) FROM range(100000000000) a", timeout=0.3)


def test_bad_sql_and_a_missing_lake_say_what_is_wrong(lake: Path, tmp_path: Path) -> None:
    with pytest.raises(HuntError, match="conn_typo"):
        hunt(lake, "SELECT * FROM conn_typo")
    with pytest.raises(HuntError, match="no such lake"):
        hunt(tmp_path / "nope", "SELECT 1")
