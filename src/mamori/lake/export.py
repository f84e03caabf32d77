"""Write one table as JSON lines, Parquet, or Zeek's own TSV log format.

The Zeek format lets existing tooling (zeek-cut, SIEM parsers) read mamori's records unchanged:
``id.``-prefixed connection fields, ``#fields``/``#types`` headers, ``-`` for unset, ``(empty)`` for
empty strings and sets, times and intervals with six decimals.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE = ("source", "first_record", "last_record")
_ID_FIELDS = {
    "orig_h": "id.orig_h",
    "orig_p": "id.orig_p",
    "resp_h": "id.resp_h",
    "resp_p": "id.resp_p",
}
_INTERVALS = {"duration", "rtt"}
_ADDRS = {"orig_h", "resp_h", "data_channel_orig_h", "data_channel_resp_h", "x_originating_ip"}
_PORTS = {"orig_p", "resp_p", "data_channel_resp_p"}


def zeek_type(name: str, t: pa.DataType) -> str:
    if name in _ADDRS:
        return "addr"
    if name in _PORTS:
        return "port"
    if name in _INTERVALS:
        return "interval"
    if pa.types.is_timestamp(t):
        return "time"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "count"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_list(t):
        inner = "interval" if name == "TTLs" else zeek_type("", t.value_type)
        kind = (
            "set" if name in ("tunnel_parents", "rcptto", "to", "cc", "tags", "path") else "vector"
        )
        return f"{kind}[{inner}]"
    return "string" if name != "proto" else "enum"


def _cell(v: object, ztype: str, in_set: bool = False) -> str:
    """One value as Zeek's ASCII writer prints it (threading/formatters/Ascii.cc): a string equal
    to the unset or empty marker gets its first byte escaped, and inside a set or vector the set
    separator is escaped, so every cell reads back to exactly its value."""
    if v is None:
        return "-"
    if isinstance(v, dt.datetime):
        return f"{v.timestamp():.6f}"
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, float):
        return f"{v:.6f}"
    if isinstance(v, list):
        if not v:
            return "(empty)"
        inner = ztype[ztype.index("[") + 1 : -1] if "[" in ztype else "string"
        return ",".join(_cell(x, inner, in_set=True) for x in v)
    s = str(v)
    if s == "":
        return "(empty)"
    if s in ("-", "(empty)"):
        return f"\\x{ord(s[0]):02x}{s[1:]}"
    s = s.replace("\t", "\\x09").replace("\n", "\\x0a")
    return s.replace(",", "\\x2c") if in_set else s


def write_zeek(table: str, data: pa.Table, out: IO[str]) -> None:
    names = [n for n in data.column_names if n not in PROVENANCE and n != "conn_no"]
    data = data.select(names)
    types = [zeek_type(n, data.schema.field(n).type) for n in names]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H-%M-%S")
    out.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n")
    out.write(f"#path\t{table}\n#open\t{now}\n")
    out.write("#fields\t" + "\t".join(_ID_FIELDS.get(n, n) for n in names) + "\n")
    out.write("#types\t" + "\t".join(types) + "\n")
    for row in data.to_pylist():
        out.write("\t".join(_cell(row[n], t) for n, t in zip(names, types, strict=True)) + "\n")
    out.write(f"#close\t{now}\n")


def write_jsonl(data: pa.Table, out: IO[str]) -> None:
    """Zeek's JSON field names (``id.orig_h``), ISO timestamps."""
    for row in data.to_pylist():
        rec = {}
        for k, v in row.items():
            if isinstance(v, dt.datetime):
                v = v.timestamp()
            rec[_ID_FIELDS.get(k, k)] = v
        out.write(json.dumps(rec, separators=(",", ":"), default=str) + "\n")


def write_table(table: str, data: pa.Table, fmt: str, path: Path | None, stdout: IO[str]) -> None:
    if fmt == "parquet":
        if path is None:
            raise ValueError("--format parquet needs -o FILE")
        pq.write_table(data, path, compression="zstd")
        return
    if path is None:
        sink = stdout
        (write_zeek(table, data, sink) if fmt == "zeek" else write_jsonl(data, sink))
        return
    with path.open("w", encoding="utf-8") as fh:
        (write_zeek(table, data, fh) if fmt == "zeek" else write_jsonl(data, fh))
