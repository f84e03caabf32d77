"""Zeek's own logs (TSV with ``#fields`` headers, or JSON lines) into the lake's network tables.

Users who already run Zeek hand mamori its logs instead of captures: conn, dns, http, ssl, ssh, ftp
and smtp become rows of the tables of the same names, whose columns are Zeek's (the ``id.`` prefix
dropped, ``data_channel.passive`` flattened to ``data_channel_passive``), so a Zeek log and a
capture read by mamori land alike. Zeek's ``uid`` is kept: it is what ties a dns or http record to
its connection, and what the analyst will search for in their own Zeek logs.

What Zeek does not log and the lake has stays null (``ja3``/``ja3s``/``ja4``, ``subject``/``issuer``,
``hassh``/``hasshServer``, ``is_webmail`` unless a Zeek package added them under those names);
what Zeek logs and the lake has no column for (``community_id``, ``vlan``, a package's extra
fields) is dropped. ``conn.source`` is the log file and ``first_record``/``last_record`` its line.

Which log a file is comes from ``#path`` (TSV) or ``_path`` (JSON), else from its field names.
Other logs (notice, weird, files, x509, ...) are counted and skipped with one note per kind.

The TSV body is split and converted column by column over whole line batches (Polars), never a
Python loop per line. Values stay as Zeek's writer rendered them (non-printable bytes as ``\\xNN``,
the lake's own rendering), except the set separator escaped inside a set element (``\\x2c``), which
is the TSV format's artefact and becomes the comma it stands for, as in JSON logs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from mamori.schema import NETWORK_TABLES, schema_of
from mamori.sensors.logs._lines import line_batches, parse_times
from mamori.sensors.registry import ReadContext, log_sensor, read_head

# Columns the lake never leaves null whose Zeek value may be unset or absent: the value Zeek means.
DEFAULTS: dict[str, object] = {
    "AA": False, "TC": False, "RD": False, "RA": False, "Z": 0, "rejected": False,
    "trans_depth": 0, "request_body_len": 0, "response_body_len": 0,
}  # fmt: skip
# Columns this sensor fills itself (conn's provenance).
_FILLED = frozenset({"source", "first_record", "last_record"})
# Fields that tell a log apart when it names no path (checked in this order).
SIGNATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("conn", ("conn_state", "history", "orig_ip_bytes")),
    ("dns", ("qtype", "trans_id", "rcode")),
    ("http", ("trans_depth", "method", "status_code", "uri")),
    ("ssl", ("cipher", "ssl_history", "server_name", "established")),
    ("ssh", ("auth_attempts", "host_key", "kex_alg")),
    ("ftp", ("reply_code", "command", "data_channel.passive")),
    ("smtp", ("helo", "mailfrom", "rcptto")),
)
_POLARS = {t: pl.from_arrow(schema_of(t).empty_table()).schema for t in NETWORK_TABLES}  # type: ignore[union-attr]
# Per table, the fields a record cannot go without: every column the lake never leaves null that
# has no default (ts, uid and the 5-tuple; conn's and dns's proto). A log lacking one, or a
# record with it unset, is warned about and skipped, not handed to the lake to fail the file.
REQUIRED = {
    t: tuple(
        f.name
        for f in schema_of(t)
        if not f.nullable and f.name not in DEFAULTS and f.name not in _FILLED
    )
    for t in NETWORK_TABLES
}


def zeek_name(column: str) -> str:
    """The Zeek field a lake column comes from."""
    if column in ("orig_h", "orig_p", "resp_h", "resp_p"):
        return f"id.{column}"
    if column.startswith("data_channel_"):
        return "data_channel." + column.removeprefix("data_channel_")
    return column


def sniff(head: bytes) -> bool:
    if head.startswith(b"#separator"):
        return True
    line = head.lstrip().split(b"\n", 1)[0].strip()
    if not line.startswith(b"{"):
        return False
    obj = json.loads(line)
    if not isinstance(obj, dict) or "event_type" in obj or "eventid" in obj:
        return False  # Suricata EVE, Cowrie
    nested = isinstance(obj.get("id"), dict) and "orig_h" in obj["id"]
    return (
        "id.orig_h" in obj
        or nested
        or ("_path" in obj and "ts" in obj)
        or ("uid" in obj and "ts" in obj)
    )


@log_sensor("zeek", tables=NETWORK_TABLES, sniff=sniff, priority=40)
def read(path: Path, ctx: ReadContext) -> Iterator[tuple[str, pa.Table]]:
    """Zeek logs, TSV or JSON: conn, dns, http, ssl, ssh, ftp and smtp records."""
    others: dict[str, list[int]] = {}  # log kind -> [first line, records]
    if read_head(path, 16).startswith(b"#"):
        yield from _read_tsv(path, ctx, others)
    else:
        yield from _read_json(path, ctx, others)
    for kind, (first, count) in others.items():
        ctx.warn(first, f"{count} records of Zeek's {kind} log skipped (no lake table for it)")
        ctx.warned += count - 1


# -- TSV ------------------------------------------------------------------------------------------


@dataclass
class _Header:
    separator: str = "\t"
    set_separator: str = ","
    empty: str = "(empty)"
    unset: str = "-"
    path: str | None = None
    fields: list[str] | None = None
    types: list[str] = field(default_factory=list)

    def apply(self, line: str) -> None:
        if line.startswith("#separator "):
            # An empty one (a damaged header) cannot cut anything: the last one stands, and a
            # line it does not cut is warned about as any line of the wrong width.
            self.separator = _unescape(line.removeprefix("#separator ").strip()) or self.separator
            return
        key, _, value = line[1:].partition(self.separator)
        if key == "set_separator":
            self.set_separator = _unescape(value)
        elif key == "empty_field":
            self.empty = value
        elif key == "unset_field":
            self.unset = value
        elif key == "path":
            self.path = value
        elif key == "fields":
            self.fields = value.split(self.separator)
        elif key == "types":
            self.types = value.split(self.separator)


def _unescape(text: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


def _read_tsv(
    path: Path, ctx: ReadContext, others: dict[str, list[int]]
) -> Iterator[tuple[str, pa.Table]]:
    header = _Header()
    for numbers, lines in line_batches(path):
        frame = pl.DataFrame({"record": pl.Series(numbers), "line": pl.Series(lines)})
        meta = pl.col("line").str.starts_with("#")
        frame = frame.with_columns(seg=meta.cum_sum())
        metas = frame.filter(meta)["line"].to_list()
        applied = 0
        body = frame.filter(~meta & (pl.col("line").str.len_bytes() > 0))
        for part in body.partition_by("seg", maintain_order=True):
            seg = part["seg"][0]
            for line in metas[applied:seg]:
                header.apply(line)
            applied = seg
            yield from _tsv_part(path, ctx, header, part, others)
        for line in metas[applied:]:
            header.apply(line)


def _tsv_part(
    path: Path, ctx: ReadContext, h: _Header, part: pl.DataFrame, others: dict[str, list[int]]
) -> Iterator[tuple[str, pa.Table]]:
    if h.fields is None:
        ctx.warn_rows(part.select("record", reason=pl.lit("no #fields header before this line")))
        return
    table = _table_of(h.path, h.fields)
    if table is None:
        _other(others, h.path or "unnamed", part)
        return
    width = len(h.fields)
    split = part.with_columns(cells=pl.col("line").str.split(h.separator))
    n = pl.col("cells").list.len()
    ctx.warn_rows(
        split.filter(n != width).select(
            "record",
            reason=pl.format(
                "{} fields where the #fields header names {} (a truncated or damaged line)",
                n,
                pl.lit(width),
            ),
        )
    )
    good = split.filter(n == width)
    if good.height == 0:
        return
    index = {name: i for i, name in enumerate(h.fields)}
    raw: dict[str, pl.Expr] = {}
    for column in schema_of(table).names:
        i = index.get(zeek_name(column))
        if i is not None:
            cell = pl.col("cells").list.get(i)
            raw[column] = pl.when(cell == h.unset).then(None).otherwise(cell)
    out = _convert(table, good, raw, h.empty, h.set_separator, tsv=True, path=path, ctx=ctx)
    if out is not None:
        yield table, out


def _table_of(name: str | None, fields: list[str] | set[str]) -> str | None:
    if name is not None:
        return name if name in NETWORK_TABLES else None
    have = set(fields)
    for table, marks in SIGNATURES:
        if sum(m in have for m in marks) >= 2:
            return table
    return None


def _other(others: dict[str, list[int]], kind: str, part: pl.DataFrame) -> None:
    first = int(part["record"][0])
    seen = others.setdefault(kind, [first, 0])
    seen[1] += part.height


# -- conversion (shared by TSV and JSON) ----------------------------------------------------------


def _convert(
    table: str,
    frame: pl.DataFrame,
    raw: dict[str, pl.Expr],
    empty: str | None,
    set_separator: str,
    *,
    tsv: bool,
    path: Path,
    ctx: ReadContext,
) -> pa.Table | None:
    """Typed lake columns from raw text cells (null = unset), bad cells warned and their rows
    dropped, required cells checked, absent columns null (or the value Zeek means)."""
    types = _POLARS[table]
    typed: dict[str, pl.Expr] = {}
    for column, cell in raw.items():
        typed[column] = _typed(column, cell, types[column], empty, set_separator, tsv=tsv)
    frame = frame.with_columns(
        **{f"raw_{c}": e for c, e in raw.items()}, **{f"val_{c}": e for c, e in typed.items()}
    )
    reasons = [
        pl.when(pl.col(f"raw_{c}").is_not_null() & pl.col(f"val_{c}").is_null()).then(
            pl.format("field {}: {} is not a valid {}", pl.lit(zeek_name(c)), _shown(c, frame),
                      pl.lit(_type_word(types[c])))
        )
        for c in raw
    ] + [
        pl.when(pl.col(f"val_{c}").is_null()).then(pl.lit(f"field {zeek_name(c)} is unset"))
        if c in raw
        else pl.lit(f"no field {zeek_name(c)}")
        for c in REQUIRED[table]
    ]  # fmt: skip
    frame = frame.with_columns(reason=pl.coalesce(reasons))
    ctx.warn_rows(frame.filter(pl.col("reason").is_not_null()))
    frame = frame.filter(pl.col("reason").is_null())
    if frame.height == 0:
        return None
    columns: list[pl.Expr] = []
    for column, dtype in types.items():
        if column in raw:
            expr = pl.col(f"val_{column}")
        elif table == "conn" and column == "source":
            expr = pl.lit(str(path))
        elif table == "conn" and column in ("first_record", "last_record"):
            expr = pl.col("record")
        else:
            expr = pl.lit(None)
        if column in DEFAULTS:
            expr = expr.fill_null(DEFAULTS[column])
        columns.append(expr.cast(dtype).alias(column))
    return frame.select(columns).to_arrow()


def _shown(column: str, frame: pl.DataFrame) -> pl.Expr:
    """A raw cell as text for a warning (JSON logs give lists already split)."""
    cell = pl.col(f"raw_{column}")
    if isinstance(frame.schema[f"raw_{column}"], pl.List):
        return cell.list.join(",")
    return cell


def _type_word(dtype: pl.DataType) -> str:
    if dtype == pl.Datetime("us", "UTC"):
        return "time"
    if dtype == pl.Boolean:
        return "bool (T or F)"
    if isinstance(dtype, pl.List):
        return "list of " + _type_word(dtype.inner)
    return str(dtype).lower()


def _typed(
    column: str, cell: pl.Expr, dtype: pl.DataType, empty: str | None, sep: str, *, tsv: bool
) -> pl.Expr:
    if isinstance(dtype, pl.List):
        if tsv:
            items = (
                pl.when(cell == empty)
                .then(pl.lit([], pl.List(pl.String)))
                .otherwise(cell.str.split(sep))
            )
            inner = pl.element()
            if dtype.inner == pl.String:
                inner = inner.str.replace_all(r"\x2c", ",", literal=True)
        else:
            items = cell  # JSON logs: decoded as a list of text already
            inner = pl.element()
        conv = _scalar(inner, dtype.inner, None, tsv=tsv)  # type: ignore[arg-type]
        typed = items.list.eval(conv)
        # An element that did not convert makes the whole cell invalid (null, then warned).
        ok = items.list.eval(inner.is_null() | conv.is_not_null()).list.all()
        return pl.when(ok).then(typed)
    return _scalar(cell, dtype, empty, tsv=tsv)


def _scalar(cell: pl.Expr, dtype: pl.DataType, empty: str | None, *, tsv: bool) -> pl.Expr:
    if dtype == pl.Datetime("us", "UTC"):
        if tsv:
            secs = cell.cast(pl.Float64, strict=False)
            # Out of the range of microseconds since 1970 (or not finite): not a time, warned.
            micros = (secs * 1e6).round(0).cast(pl.Int64, strict=False)
            return micros.cast(pl.Datetime("us", "UTC"))
        return parse_times(cell)
    if dtype == pl.Boolean:
        yes, no = ("T", "F") if tsv else ("true", "false")
        return pl.when(cell == yes).then(True).when(cell == no).then(False)
    if dtype.is_integer():
        return cell.str.strip_suffix(".0").cast(dtype, strict=False)
    if dtype.is_float():
        return cell.cast(dtype, strict=False)
    if tsv:
        # Zeek's writer escapes the first byte of a string equal to its unset or empty marker.
        out = (
            pl.when(cell == r"\x2d")
            .then(pl.lit("-"))
            .when(cell == r"\x28empty)")
            .then(pl.lit("(empty)"))
        )
        if empty is not None:
            out = out.when(cell == empty).then(pl.lit(""))
        return out.otherwise(cell)
    if empty is not None:
        return pl.when(cell == empty).then(pl.lit("")).otherwise(cell)
    return cell


# -- JSON -----------------------------------------------------------------------------------------


def _shape(names: dict[str, pl.DataType]) -> pl.Struct:
    return pl.Struct(
        {k: pl.List(pl.String) if isinstance(v, pl.List) else pl.String for k, v in names.items()}
    )


# JSON lines are told apart by their keys, found as text (a JSON decode costs as much as the line
# is long, whatever is asked of it), then decoded once into their log's shape. Leaves are text
# (numbers and booleans become their text, cast afterwards), lists are lists of text.
# Some shippers nest the record fields (``"id": {"orig_h": ...}``) instead of Zeek's dotted names.
_NESTED = {
    "id": pl.Struct({k: pl.String for k in ("orig_h", "orig_p", "resp_h", "resp_p")}),
    "data_channel": pl.Struct({k: pl.String for k in ("passive", "orig_h", "resp_h", "resp_p")}),
}
TABLE_SHAPES = {
    t: pl.Struct(
        {**_shape({zeek_name(c): d for c, d in _POLARS[t].items()}).to_schema(), **_NESTED}
    )
    for t in NETWORK_TABLES
}


def _member(key: str) -> pl.Expr:
    return pl.col("j").struct.field(key)


def _json_field(column: str) -> pl.Expr:
    """A lake column's Zeek field, dotted or nested."""
    name = zeek_name(column)
    outer, _, inner = name.partition(".")
    if inner and outer in _NESTED:
        return pl.coalesce(_member(name), _member(outer).struct.field(inner))
    return _member(name)


def _has_key(key: str) -> pl.Expr:
    return pl.col("line").str.contains(f'"{key}":', literal=True)


def _decode(frame: pl.DataFrame, shape: pl.Struct) -> tuple[pl.DataFrame, pl.Series]:
    """Lines decoded into ``j``; those that are not JSON objects of the shape found by halving."""
    try:
        decoded = frame.with_columns(j=pl.col("line").str.json_decode(shape))
        return decoded, pl.Series("record", [], pl.Int64)
    except pl.exceptions.PolarsError:
        if frame.height <= 1:
            return frame.head(0).with_columns(j=pl.lit(None, shape)), frame["record"]
        half = frame.height // 2
        good_a, bad_a = _decode(frame.head(half), shape)
        good_b, bad_b = _decode(frame.tail(frame.height - half), shape)
        return pl.concat([good_a, good_b]), pl.concat([bad_a, bad_b])


def _warn_shape(ctx: ReadContext, records: pl.Series) -> None:
    ctx.warn_rows(
        pl.DataFrame({"record": records.sort()}).with_columns(
            reason=pl.lit("not a JSON object of Zeek's shape")
        )
    )


def _read_json(
    path: Path, ctx: ReadContext, others: dict[str, list[int]]
) -> Iterator[tuple[str, pa.Table]]:
    guess = pl.lit(None, pl.String)
    for table, marks in reversed(SIGNATURES):
        hits = pl.sum_horizontal([_has_key(m).cast(pl.Int8) for m in marks])
        guess = pl.when(hits >= 2).then(pl.lit(table)).otherwise(guess)
    named = pl.col("line").str.extract(r'"_path"\s*:\s*"([^"\\]*)"', 1)
    for numbers, lines in line_batches(path):
        frame = pl.DataFrame({"record": pl.Series(numbers), "line": pl.Series(lines)}).filter(
            pl.col("line").str.strip_chars().str.len_bytes() > 0
        )
        objects = pl.col("line").str.strip_chars().str.starts_with("{")
        not_json = frame.filter(~objects)["record"]
        _warn_shape(ctx, not_json)
        frame = frame.filter(objects).with_columns(kind=pl.coalesce(named, guess))
        for (kind,), part in frame.partition_by("kind", as_dict=True, maintain_order=True).items():
            if kind not in NETWORK_TABLES:
                _other(others, kind or "unnamed", part)
                continue
            part, broken = _decode(part, TABLE_SHAPES[kind])
            _warn_shape(ctx, broken)
            if part.height == 0:
                continue
            raw = {c: _json_field(c) for c in schema_of(kind).names}
            present = part.select(**{c: e.is_not_null().any() for c, e in raw.items()}).row(0)
            raw = {c: e for (c, e), has in zip(raw.items(), present, strict=True) if has}
            out = _convert(kind, part, raw, None, ",", tsv=False, path=path, ctx=ctx)
            if out is not None:
                yield kind, out
