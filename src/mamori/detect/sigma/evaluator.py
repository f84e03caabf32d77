"""Compiled Sigma rules over the lake's tables: one evaluation frame per source, all rules at once.

Per source (Sysmon process creation, the Security channel, ...) the table's rows are filtered once
on its typed columns, the JSON fields any of its rules names are decoded once (one ``json_decode``
with a struct of exactly those fields), each used field is lowercased once, and then every rule's
expression is evaluated over that frame in one ``select`` (Polars runs them in parallel). A rule's
matches are the ``arg_true`` of its column: no Python work per event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from mamori.detect.sigma.compiler import (
    TEXT,
    CompiledRule,
    CompiledRules,
    basename_name,
    escape_regex,
    items_name,
    lower_name,
)
from mamori.detect.sigma.pipeline import Source, TableView
from mamori.schema import schema_of

RULES_PER_SELECT = 256  # rule columns evaluated together: bounds the mask frame's memory
# Rows decoded at once: bounds the decoded and lowercased copies (fields x rows) of a large lake;
# each batch compiles the rules' regexes again, so batches are large.
ROWS_PER_BATCH = 500_000

MATCH_SCHEMA = {
    "rule_id": pl.String,
    "title": pl.String,
    "level": pl.String,
    "techniques": pl.List(pl.String),
    "table": pl.String,
    "uid": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "host": pl.String,
    "src": pl.String,
    "dst": pl.String,
}


def empty_matches() -> pl.DataFrame:
    return pl.DataFrame(schema=MATCH_SCHEMA)


_XML_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))


def _xml_field(data: pl.Expr, name: str) -> pl.Expr:
    """``<Data Name="F">v</Data>`` (EventData) or ``<F ...>v</F>`` (System), entities decoded."""
    q = escape_regex(name)
    value = pl.coalesce(
        data.str.extract(f'<Data Name="{q}">([^<]*)</Data>', 1),
        data.str.extract(f"<{q}(?:\\s[^>]*)?>([^<]*)</{q}>", 1),
    )
    for entity, char in _XML_ENTITIES:
        value = value.str.replace_all(entity, char, literal=True)
    return value


def _kv_field(data: pl.Expr, name: str) -> pl.Expr:
    """``F=value`` or ``F="value"`` (auditd's rendering)."""
    raw = data.str.extract(f'(?:^|\\s){escape_regex(name)}=("[^"]*"|\\S*)', 1)
    return (
        pl.when(raw.str.starts_with('"'))
        .then(raw.str.slice(1).str.strip_suffix('"'))
        .otherwise(raw)
    )


def _data_field(table: TableView, name: str) -> pl.Expr:
    assert table.data is not None
    if table.decode == "xml":
        return _xml_field(pl.col(table.data), name)
    if table.decode == "kv":
        return _kv_field(pl.col(table.data), name)
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    whole = pl.col(table.data).str.json_path_match(f"$['{quoted}']")
    if "." not in name:
        return whole
    nested = "".join(f"['{p}']" for p in quoted.split("."))
    return pl.coalesce(whole, pl.col(table.data).str.json_path_match(f"${nested}"))


def _address(table: TableView, names: Sequence[str]) -> tuple[pl.Expr, set[str]]:
    """The first non-empty of the named fields (``-`` is Windows' "none"), and the data fields
    that requires."""
    schema = schema_of(table.name)
    exprs: list[pl.Expr] = []
    fields: set[str] = set()
    for n in names:
        if table.data is None and n in schema.names:
            exprs.append(pl.col(n).cast(pl.String))
        elif table.data is not None:
            fields.add(n)
            exprs.append(pl.col(f"d:{n}"))
    if not exprs:
        return pl.lit(None, pl.String), fields
    cleaned = [
        pl.when(e.str.strip_chars().is_in(["", "-"])).then(None).otherwise(e.str.strip_chars())
        for e in exprs
    ]
    return pl.coalesce(cleaned), fields


def _where(source: Source) -> pl.Expr | None:
    terms = [
        pl.col(column).is_in(list(values)) if len(values) > 1 else pl.col(column) == values[0]
        for column, values in source.where.items()
    ]
    return pl.all_horizontal(terms) if terms else None


def source_rows(frame: pl.LazyFrame, source: Source) -> pl.DataFrame:
    """The table's rows that hold the source's events (its ``where`` on typed columns)."""
    where = _where(source)
    return (frame.filter(where) if where is not None else frame).collect()


def evaluation_frame(
    frame: pl.LazyFrame | pl.DataFrame, source: Source, units: Sequence[CompiledRule]
) -> pl.DataFrame:
    """The source's rows with what its rules need: decoded fields, lowercase columns, text."""
    return prepare(source_rows(frame.lazy(), source), source, units)


def prepare(rows: pl.DataFrame, source: Source, units: Sequence[CompiledRule]) -> pl.DataFrame:
    """Rows of one source with the columns its rules read: ``d:`` fields decoded from the JSON
    (or XML, key=value) column, ``t:`` the keyword text, ``l:`` lowercase copies."""
    table = source.table
    schema = schema_of(table.name)
    frame = rows.lazy()
    src, src_fields = _address(table, table.src)
    dst, dst_fields = _address(table, table.dst)
    fields = sorted(set().union(*(u.data_fields for u in units), src_fields, dst_fields))
    if fields and table.data is not None:
        if table.decode == "struct":
            decoded = pl.col(table.data).str.json_decode(pl.Struct({f: pl.String for f in fields}))
            frame = frame.with_columns([decoded.struct.field(f).alias(f"d:{f}") for f in fields])
        else:
            frame = frame.with_columns([_data_field(table, f).alias(f"d:{f}") for f in fields])
    if any(u.text for u in units):
        assert table.text is not None
        text = pl.col(table.text)
        if table.text == table.data and table.decode == "struct":
            # {"k": "v", ...} of text values: the values alone, one per line, as logged.
            text = (
                text.str.replace_all(r'(?:^\{|", )"(?:[^"\\]|\\.)*": "', "\n")
                .str.strip_suffix('"}')
                .str.replace_all(r'\\(["\\/])', "$1")
            )
            text = pl.when(pl.col(table.text) == "{}").then(None).otherwise(text)
        elif table.text == table.data and table.decode == "path":  # JSON of any shape: unescaped
            text = text.str.replace_all(r'\\(["\\/])', "$1")
        frame = frame.with_columns(text.alias(TEXT))
    lower = sorted(set().union(*(u.lower for u in units)))
    frame = frame.with_columns(
        [pl.col(c).cast(pl.String).str.to_lowercase().alias(lower_name(c)) for c in lower]
    )
    base = sorted(set().union(*(u.base for u in units)))
    frame = frame.with_columns(
        [pl.col(lower_name(c)).str.extract(r"(\\[^\\]*)$", 1).alias(basename_name(c)) for c in base]
    )
    split = sorted(set().union(*(u.split for u in units)))
    frame = frame.with_columns(
        [pl.col(lower_name(c)).str.split(",").alias(items_name(c)) for c in split]
    )
    host = pl.col("host") if "host" in schema.names else pl.lit(None, pl.String)
    return frame.with_columns(
        __src=src, __dst=dst, __host=host.cast(pl.String), __ts=pl.col("ts")
    ).collect()


@dataclass(frozen=True)
class _Group:
    source: Source
    units: list[CompiledRule]


def evaluate(
    compiled: CompiledRules, frames: Mapping[str, pl.LazyFrame | pl.DataFrame]
) -> pl.DataFrame:
    """Every match of every compiled rule: one row per (rule, event), ``MATCH_SCHEMA``.

    A table missing from ``frames`` is a source with no events, not an error.
    """
    groups: dict[str, _Group] = {}
    for unit in compiled.compiled:
        groups.setdefault(unit.source.id, _Group(unit.source, [])).units.append(unit)
    found: list[pl.DataFrame] = []
    for group in groups.values():
        table = group.source.table.name
        if table not in frames:
            continue
        rows = source_rows(frames[table].lazy(), group.source)
        for start in range(0, rows.height, ROWS_PER_BATCH):
            batch = prepare(rows.slice(start, ROWS_PER_BATCH), group.source, group.units)
            found.extend(_matches(batch, table, group.units))
    if not found:
        return empty_matches()
    return pl.concat(found).cast(MATCH_SCHEMA)  # type: ignore[arg-type]


def _matches(frame: pl.DataFrame, table: str, units: Sequence[CompiledRule]) -> list[pl.DataFrame]:
    """Each rule's matching rows of one prepared batch."""
    found: list[pl.DataFrame] = []
    if frame.height == 0:
        return found
    head = frame.select(
        table=pl.lit(table),
        uid=pl.col("uid"),
        ts=pl.col("__ts"),
        host=pl.col("__host"),
        src=pl.col("__src"),
        dst=pl.col("__dst"),
    )
    for start in range(0, len(units), RULES_PER_SELECT):
        chunk = units[start : start + RULES_PER_SELECT]
        masks = frame.select([u.expr.alias(str(i)) for i, u in enumerate(chunk)])
        for i, unit in enumerate(chunk):
            rows = masks.get_column(str(i)).arg_true()
            if len(rows) == 0:
                continue
            r = unit.rule
            found.append(
                head[rows].select(
                    rule_id=pl.lit(r.id),
                    title=pl.lit(r.title),
                    level=pl.lit(r.level),
                    techniques=pl.lit(list(r.techniques), dtype=pl.List(pl.String)),
                    table=pl.col("table"),
                    uid=pl.col("uid"),
                    ts=pl.col("ts"),
                    host=pl.col("host"),
                    src=pl.col("src"),
                    dst=pl.col("dst"),
                )
            )
    return found
