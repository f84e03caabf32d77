"""The pipeline's record-to-Arrow step against ``Table.from_pylist``, the way it was done before."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.flows.pipeline import _fitting_table, _service_column, _to_table
from mamori.schema import schema_of

TABLES = ["http", "ssl", "ssh", "ftp", "smtp", "dns"]


def _reference(table: str, rows: list[dict[str, object]]) -> pa.Table:
    schema = schema_of(table)
    loose = pa.schema([pa.field("ts", pa.float64()) if f.name == "ts" else f for f in schema])
    data = pa.Table.from_pylist(rows, schema=loose)
    micros = pc.cast(pc.round(pc.multiply(data["ts"], 1e6)), pa.int64()).cast(
        schema.field("ts").type
    )
    return data.set_column(schema.get_field_index("ts"), schema.field("ts"), micros)


def _values(t: pa.DataType) -> st.SearchStrategy[object]:
    if pa.types.is_string(t):
        return st.text(max_size=8)
    if pa.types.is_boolean(t):
        return st.booleans()
    if pa.types.is_floating(t):
        return st.floats(-1e6, 1e6)
    if pa.types.is_unsigned_integer(t):
        return st.integers(0, 2**t.bit_width - 1)
    if pa.types.is_list(t):
        return st.lists(st.none() | _values(t.value_type), max_size=3)
    raise AssertionError(f"no strategy for {t}")


@st.composite
def _records(draw: st.DrawFn, table: str) -> list[dict[str, object]]:
    """Records as analysers make them: every required field, some optional ones (or None)."""
    schema = schema_of(table)
    out = []
    for _ in range(draw(st.integers(0, 6))):
        rec: dict[str, object] = {"ts": draw(st.floats(0, 2e9, allow_nan=False))}
        for f in schema:
            if f.name == "ts":
                continue
            if not f.nullable:
                rec[f.name] = draw(_values(f.type))
            elif draw(st.booleans()):
                rec[f.name] = draw(st.none() | _values(f.type))
        out.append(rec)
    return out


@pytest.mark.parametrize("table", TABLES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_to_table_equals_from_pylist(table: str, data: st.DataObject) -> None:
    rows = data.draw(_records(table))
    got, want = _to_table(table, rows), _reference(table, rows)
    assert got.schema.equals(want.schema, check_metadata=True)
    assert got.equals(want)


def _service_reference(
    n: int, job_nos: np.ndarray, rows: np.ndarray, services: dict[int, str]
) -> pa.Array:
    codes = np.full(n, -1, np.int32)
    names: dict[str, int] = {}
    for no, row in zip(job_nos.tolist(), rows.tolist(), strict=True):
        name = services.get(no)
        if name is not None:
            codes[row] = names.setdefault(name, len(names))
    if not names:
        return pa.nulls(n, pa.string())
    indices = pa.array(codes, mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names))).cast(pa.string())


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 30).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.tuples(st.integers(0, 20), st.integers(0, n - 1)), max_size=40),
            st.dictionaries(st.integers(0, 20), st.sampled_from(["http", "ssl", "socks,http"])),
        )
    )
)
def test_service_column_equals_one_row_at_a_time(case) -> None:
    n, pairs, services = case
    nos = np.array([p[0] for p in pairs], np.int64)
    rows = np.array([p[1] for p in pairs], np.int64)
    assert _service_column(n, nos, rows, services).equals(
        _service_reference(n, nos, rows, services)
    )


def test_a_record_its_table_cannot_hold_is_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An analyser bug (a value past its lake column) costs that record, not the ingest."""

    def row(uid: str, port: object) -> dict[str, object]:
        return {
            "ts": 1.5, "uid": uid, "orig_h": "10.0.0.1", "orig_p": 40001, "resp_h": "10.0.0.2",
            "resp_p": 21, "command": "PASV", "data_channel_resp_p": port,
        }  # fmt: skip

    rows = [row("Ca", 1025), row("Cb", 69190), row("Cc", None)]
    with caplog.at_level("ERROR", logger="mamori"):
        table = _fitting_table("ftp", rows)
    assert table["uid"].to_pylist() == ["Ca", "Cc"]
    assert table["data_channel_resp_p"].to_pylist() == [1025, None]
    assert len(caplog.records) == 1 and "'Cb'" in caplog.records[0].getMessage()
