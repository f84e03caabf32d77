"""The lake: partitioned Parquet by record date, DuckDB views, schema enforced."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mamori.lake.writer as writer_module
from mamori.lake.query import LakeError, connect
from mamori.lake.writer import COMPACT_PARTS, PARTIAL, LakeWriter
from mamori.schema import schema_of


def _conn_rows(days: list[int]) -> pa.Table:
    schema = schema_of("conn")
    n = len(days)
    cols = {f.name: pa.nulls(n, f.type) for f in schema}
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cols["ts"] = pa.array(
        [base + dt.timedelta(days=d, hours=23) for d in days], schema.field("ts").type
    )
    cols["uid"] = pa.array([f"C{i}" for i in range(n)])
    cols["orig_h"] = pa.array(["10.0.0.1"] * n)
    cols["resp_h"] = pa.array(["10.0.0.2"] * n)
    cols["orig_p"] = pa.array([1000 + i for i in range(n)], pa.uint16())
    cols["resp_p"] = pa.array([80] * n, pa.uint16())
    cols["proto"] = pa.array(["tcp"] * n)
    cols["source"] = pa.array(["x.pcap"] * n)
    cols["first_record"] = pa.array(range(n), pa.uint64())
    cols["last_record"] = pa.array(range(n), pa.uint64())
    return pa.table([cols[f.name] for f in schema], schema=schema)


def test_partitions_by_day_and_queries(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, flush_rows=2) as w:
        w.write("conn", _conn_rows([0, 0, 1]))
        w.write("conn", _conn_rows([2]))
    days = sorted(p.name for p in (tmp_path / "conn").iterdir())
    assert days == ["date=2026-01-01", "date=2026-01-02", "date=2026-01-03"]
    con = connect(tmp_path)
    assert con.sql("SELECT count(*) FROM conn").fetchall() == [(4,)]
    got = con.sql("SELECT date, count(*) FROM conn GROUP BY 1 ORDER BY 1").fetchall()
    assert [r[1] for r in got] == [2, 1, 1]


def test_empty_lake_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="no lake tables"):
        connect(tmp_path)


def test_wrong_columns_are_rejected(tmp_path: Path) -> None:
    with pytest.raises((pa.ArrowInvalid, ValueError, KeyError)):
        LakeWriter(tmp_path).write("conn", pa.table({"x": [1]}))


def _days_of(days: list[int]) -> Counter[str]:
    """The date partitions rows written ``days`` after 2026-01-01 belong in, with their counts."""
    base = dt.date(2026, 1, 1)
    return Counter(f"date={base + dt.timedelta(days=d)}" for d in days)


def _rows_per_day(lake: Path) -> Counter[str]:
    """Rows of the lake's conn table per date partition, read from the files' footers."""
    return Counter(
        {
            p.name: sum(pq.read_metadata(f).num_rows for f in p.iterdir())
            for p in (lake / "conn").iterdir()
        }
    )


@given(st.lists(st.integers(-400, 400), min_size=1, max_size=30))
@settings(max_examples=40)
def test_every_row_lands_in_its_own_day(days: list[int]) -> None:
    """Unsorted rows, several days per flush, dates before 1970: each row in its UTC day, in
    the order it was written."""
    with tempfile.TemporaryDirectory() as tmp:
        with LakeWriter(Path(tmp), flush_rows=7) as w:
            w.write("conn", _conn_rows(days))
        assert _rows_per_day(Path(tmp)) == _days_of(days)
        # Within a file, rows keep the order they were written in (uids are C0, C1, ...).
        for f in (Path(tmp) / "conn").rglob("*.parquet"):
            order = [int(u[1:]) for u in pq.read_table(f, columns=["uid"])["uid"].to_pylist()]
            assert order == sorted(order)


def test_many_small_writes_are_compacted_and_keep_every_row_in_order(tmp_path: Path) -> None:
    """A slowly filling table holds a bounded number of parts, and writes the same rows in the
    same order as one write of them all (compaction only merges buffers)."""
    tables = [_conn_rows([i % 3] * (i % 5 + 1)) for i in range(3 * COMPACT_PARTS + 5)]
    with LakeWriter(tmp_path / "small", flush_rows=10**9) as w:
        for t in tables:
            w.write("conn", t)
            assert len(w._parts["conn"]) <= COMPACT_PARTS
    with LakeWriter(tmp_path / "once", flush_rows=10**9) as w:
        w.write("conn", pa.concat_tables(tables))
    for day in ("date=2026-01-01", "date=2026-01-02", "date=2026-01-03"):
        small, once = (
            pq.read_table(next((tmp_path / lake / "conn" / day).iterdir()))
            for lake in ("small", "once")
        )
        assert small.num_rows > 0 and small.equals(once)


def test_a_day_over_many_flushes_is_one_file_finished_only_on_close(tmp_path: Path) -> None:
    """Each flush adds a row group to its day's open file; until close no lake reader sees a
    half-written file (it is named *.parquet.partial), and after close none is left."""
    with LakeWriter(tmp_path, flush_rows=4) as w:
        for _ in range(5):
            w.write("conn", _conn_rows([0, 0, 0, 1]))
        assert not list(tmp_path.rglob("*.parquet"))
        assert list(tmp_path.rglob("*" + PARTIAL))
    assert not list(tmp_path.rglob("*" + PARTIAL))
    for day, rows in (("date=2026-01-01", 15), ("date=2026-01-02", 5)):
        (only,) = (tmp_path / "conn" / day).iterdir()
        meta = pq.read_metadata(only)
        assert meta.num_rows == rows and meta.num_row_groups == 5
        uids = pq.read_table(only)["uid"].to_pylist()
        assert uids == [u for _ in range(5) for u in (["C0", "C1", "C2"] if rows == 15 else ["C3"])]
    assert connect(tmp_path).sql("SELECT count(*) FROM conn").fetchall() == [(20,)]


@given(st.lists(st.integers(0, 9), min_size=1, max_size=40), st.integers(1, 3))
@settings(max_examples=30)
def test_more_days_than_open_files_keeps_every_row(days: list[int], max_open: int) -> None:
    """Past MAX_OPEN days the least recently used file is finished and a new one started: every
    row still lands in its day, and no partial file is left."""
    old = writer_module.MAX_OPEN
    writer_module.MAX_OPEN = max_open
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with LakeWriter(Path(tmp), flush_rows=3) as w:
                for d in days:
                    w.write("conn", _conn_rows([d]))
            assert not list(Path(tmp).rglob("*" + PARTIAL))
            assert _rows_per_day(Path(tmp)) == _days_of(days)
    finally:
        writer_module.MAX_OPEN = old


def test_delta_encoded_columns_read_back_the_same_everywhere(tmp_path: Path) -> None:
    """Times and 64-bit counters are delta-encoded; Arrow, DuckDB and Polars read them as written."""
    import polars as pl

    rows = _conn_rows([0] * 500)
    counts = pa.array([(i * 7919) % 1000 for i in range(500)], pa.uint64())
    rows = rows.set_column(rows.schema.get_field_index("orig_pkts"), "orig_pkts", counts)
    with LakeWriter(tmp_path) as w:
        w.write("conn", rows)
    (path,) = (tmp_path / "conn").rglob("*.parquet")
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {
        meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
    }
    assert "DELTA_BINARY_PACKED" in encodings["ts"]
    assert "DELTA_BINARY_PACKED" in encodings["first_record"]
    assert "DELTA_BINARY_PACKED" not in encodings["orig_p"]  # 16-bit: plain is smaller
    assert pq.read_table(path).equals(rows)
    con = connect(tmp_path)
    got = con.sql("SELECT sum(orig_pkts), max(first_record), min(ts) FROM conn").fetchall()[0]
    assert got[0] == sum(counts.to_pylist()) and got[1] == 499
    assert got[2] == rows["ts"][0].as_py()
    assert pl.read_parquet(path)["orig_pkts"].to_list() == counts.to_pylist()


def test_unique_text_is_written_plain_and_reads_back_the_same_everywhere(tmp_path: Path) -> None:
    """uid (one length, unique) is length-delta encoded, addresses are plain, low-cardinality text
    keeps its dictionary; Arrow, DuckDB and Polars all read every text column as written."""
    import polars as pl

    n = 3000
    rows = _conn_rows([0] * n)
    text = {
        "uid": pa.array([f"C{i:017d}"[::-1] for i in range(n)]),
        "orig_h": pa.array([f"10.{i % 7}.{i % 251}.{i % 13}" for i in range(n)]),
        "resp_h": pa.array([f"2001:db8::{i:x}" if i % 3 else "192.0.2.1" for i in range(n)]),
        "history": pa.array([("ShADadFf", "S", None, "Dd")[i % 4] for i in range(n)]),
    }
    for name, values in text.items():
        rows = rows.set_column(rows.schema.get_field_index(name), rows.schema.field(name), values)
    with LakeWriter(tmp_path) as w:
        w.write("conn", rows)
    (path,) = (tmp_path / "conn").rglob("*.parquet")
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {
        meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
    }
    assert "DELTA_LENGTH_BYTE_ARRAY" in encodings["uid"]
    for name in ("uid", "orig_h", "resp_h"):
        assert "RLE_DICTIONARY" not in encodings[name], name
    assert "RLE_DICTIONARY" in encodings["history"]
    assert pq.read_table(path).equals(rows)
    frame = pl.read_parquet(path)
    con = connect(tmp_path)
    for name, values in text.items():
        assert frame[name].to_list() == values.to_pylist(), name
        got = con.sql(f"SELECT {name} FROM conn ORDER BY first_record").fetchall()
        assert [r[0] for r in got] == values.to_pylist(), name


def test_tables_in_another_but_compatible_schema_are_cast_to_the_lake_schema(
    tmp_path: Path,
) -> None:
    """A stage handing over wider types (int64 ports) gets the lake's types on disk."""
    rows = _conn_rows([0, 1])
    wide = rows.set_column(
        rows.schema.get_field_index("orig_p"), "orig_p", rows["orig_p"].cast(pa.int64())
    )
    with LakeWriter(tmp_path) as w:
        w.write("conn", wide)
    back = pa.concat_tables(
        pq.read_table(f) for f in sorted((tmp_path / "conn").rglob("*.parquet"))
    )
    assert back.schema.field("orig_p").type == pa.uint16()
    assert back.equals(rows)


_text = st.text(st.characters(codec="utf-8"), max_size=40)


@given(st.lists(st.tuples(_text, _text, _text), min_size=1, max_size=40))
@settings(max_examples=25, deadline=None)
def test_any_text_in_the_plain_and_length_delta_columns_reads_back_everywhere(
    values: list[tuple[str, str, str]],
) -> None:
    """Whatever text uid and the address columns hold (empty, long, any Unicode, lengths that
    vary), Arrow, Polars and DuckDB read back what was written."""
    import polars as pl

    rows = _conn_rows([0] * len(values))
    columns = dict(zip(("uid", "orig_h", "resp_h"), zip(*values, strict=True), strict=True))
    for name, col in columns.items():
        rows = rows.set_column(
            rows.schema.get_field_index(name), rows.schema.field(name), pa.array(col, pa.string())
        )
    with tempfile.TemporaryDirectory() as tmp:
        with LakeWriter(Path(tmp)) as w:
            w.write("conn", rows)
        (path,) = (Path(tmp) / "conn").rglob("*.parquet")
        assert pq.read_table(path).equals(rows)
        frame = pl.read_parquet(path)
        got = connect(Path(tmp)).sql("SELECT uid, orig_h, resp_h FROM conn ORDER BY first_record")
        duck = got.fetchall()
        for i, name in enumerate(columns):
            assert frame[name].to_list() == list(columns[name]), name
            assert [r[i] for r in duck] == list(columns[name]), name


@pytest.mark.parametrize("codec", ["snappy", "zstd", "none"])
def test_files_use_the_chosen_codec_and_read_back_alike(tmp_path: Path, codec: str) -> None:
    rows = _conn_rows([0, 0, 1, 1, 1])
    with LakeWriter(tmp_path, compression=codec) as w:
        w.write("conn", rows)
    files = sorted((tmp_path / "conn").rglob("*.parquet"))
    assert len(files) == 2
    want = "UNCOMPRESSED" if codec == "none" else codec.upper()
    for f in files:
        meta = pq.ParquetFile(f).metadata
        chunks = [
            meta.row_group(g).column(c)
            for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)
        ]
        assert {c.compression for c in chunks} == {want}
    back = connect(tmp_path).sql("SELECT uid FROM conn ORDER BY uid").fetchall()
    assert [r[0] for r in back] == sorted(rows["uid"].to_pylist())


def test_default_codec_is_snappy_and_unknown_codecs_are_refused(tmp_path: Path) -> None:
    assert LakeWriter(tmp_path).compression == writer_module.COMPRESSION == "snappy"
    with pytest.raises(ValueError, match="lake compression 'zip' is not one of"):
        LakeWriter(tmp_path, compression="zip")


def test_lake_compression_setting_reaches_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    """``MAMORI_LAKE_COMPRESSION`` (or the TOML key) chooses the codec of every ingested file."""
    from mamori.config import load_settings
    from mamori.flows.workers import LakeIngest

    monkeypatch.setenv("MAMORI_LAKE_COMPRESSION", "zstd")
    settings = load_settings()
    assert settings.lake_compression == "zstd"
    # The smallest shared capture with some traffic in it.
    capture = min(
        (p for p in data_dir.rglob("*.pcap") if p.stat().st_size > 20_000),
        key=lambda p: p.stat().st_size,
    )
    with LakeIngest(settings, tmp_path) as ingest:
        ingest.capture(capture)
    files = list(tmp_path.rglob("*.parquet"))
    assert files
    for f in files:
        meta = pq.ParquetFile(f).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
