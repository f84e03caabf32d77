"""Windows event logs (EVTX) into ``winevt``, and their logon events into ``auth``.

Parsing is the maintained Rust parser of the ``evtx`` package (the one behind ``evtx_dump``, which
also produced SigmaHQ's regression samples, so field names and value renderings are the ones the
rules were tested on). Its JSON keeps XML's shape (``#attributes``, ``UserData`` wrapped in an
element named after the event); ``winevt.data`` flattens EventData/UserData to one object of
name -> text, the way Windows' own rendering and every Sigma backend see an event.

Logon events become ``auth`` rows vectorised over the batch (4624 success, 4625 failure, 4771
Kerberos pre-authentication failure, 4776 NTLM validation), so a brute force against a domain
controller meets an SSH brute force in the same detector.

Speed: the parser hands each record as JSON text, so one decode per event is forced; beyond it an
event costs one tuple (its columns) and, when it has fields, one ``json.dumps`` for ``data`` (kept
for byte-identical text). Columns become Arrow arrays once per batch; times are one Arrow ISO cast;
no Polars frame is built unless the batch holds logon events (``benchmarks/bench_sigma.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from mamori.schema import schema_of
from mamori.sensors.logs._lines import parse_times
from mamori.sensors.registry import LogFormatError, ReadContext, log_sensor

MAGIC = b"ElfFile\x00"
HEADER_BYTES = 4096
CHUNK_BYTES = 65536
# What evtx writes in System/TimeCreated (Arrow's ISO cast reads it); the general parser (nine
# formats and epoch numbers) only sees batches that cast refuses, this format first.
SYSTEM_TIME = "%Y-%m-%dT%H:%M:%S%.fZ"
EMPTY = "{}"


def sniff(head: bytes) -> bool:
    return head.startswith(MAGIC)


def _text(value: Any) -> str | None:
    """A field's value as Windows renders it in text."""
    if value is None:
        return None
    if isinstance(value, dict):
        return _text(value.get("#text")) if "#text" in value else json.dumps(value)
    if isinstance(value, list):
        return "\n".join(t for t in (_text(v) for v in value) if t is not None)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fields(event: dict[str, Any]) -> str:
    """EventData's named fields, or the fields of UserData's one child element, as JSON text."""
    out: dict[str, str] = {}
    data = event.get("EventData")
    if type(data) is dict:
        for key, value in data.items():
            # Most values are strings already: no call for them.
            if type(value) is str:
                if key != "#attributes":
                    out[key] = value
            elif key != "#attributes" and (text := _text(value)) is not None:
                out[key] = text
    elif data is not None and (text := _text(data)) is not None:
        out["Data"] = text
    user = event.get("UserData")
    if type(user) is dict:
        for element in user.values():
            if isinstance(element, dict):
                for key, value in element.items():
                    if key != "#attributes" and (text := _text(value)) is not None:
                        out[key] = text
    return json.dumps(out, ensure_ascii=False) if out else EMPTY


def _attr(node: Any, name: str) -> Any:
    if type(node) is dict:
        attrs = node.get("#attributes")
        if type(attrs) is dict:
            return attrs.get(name)
    return None


def _int(value: Any) -> int | None:
    if type(value) is int:
        return value
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    """A text field as text: the parser renders element text that reads as a number (a
    ``<Computer>`` named 12345) as a JSON number."""
    return value if type(value) is str else _text(value)


def _row(number: int, fallback_time: str, event: dict[str, Any]) -> tuple[Any, ...]:
    """One event's columns, in the order of ``_COLUMNS``."""
    system = event.get("System") or {}
    if type(system) is not dict:
        system = {}
    execution = system.get("Execution")
    event_id = system.get("EventID")
    if type(event_id) is dict:  # <EventID Qualifiers="...">7045</EventID>
        event_id = event_id.get("#text")
    keywords = system.get("Keywords")
    return (
        number,
        _str(_attr(system.get("TimeCreated"), "SystemTime")) or fallback_time,
        _str(system.get("Computer")),
        _str(system.get("Channel")),
        _str(_attr(system.get("Provider"), "Name")),
        _int(event_id),
        _int(system.get("Version")),
        _int(system.get("Level")),
        _int(system.get("Task")),
        _int(system.get("Opcode")),
        keywords if type(keywords) is str else _text(keywords),
        _int(system.get("EventRecordID")),
        _int(_attr(execution, "ProcessID")),
        _int(_attr(execution, "ThreadID")),
        _str(_attr(system.get("Security"), "UserID")),
        _fields(event),
    )


_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("record", pa.int64()), ("when", pa.string()), ("host", pa.string()),
    ("channel", pa.string()), ("provider", pa.string()), ("event_id", pa.int32()),
    ("version", pa.int16()), ("level", pa.int16()), ("task", pa.int32()),
    ("opcode", pa.int16()), ("keywords", pa.string()), ("record_id", pa.int64()),
    ("process_id", pa.int64()), ("thread_id", pa.int64()), ("user_sid", pa.string()),
    ("data", pa.string()),
)  # fmt: skip


@log_sensor("evtx", tables=("winevt", "auth"), sniff=sniff, priority=10)
def read(path: Path, ctx: ReadContext) -> Iterator[tuple[str, pa.Table]]:
    """Windows EVTX files: every record's System fields and EventData/UserData."""
    from evtx import PyEvtxParser

    try:
        # number_of_threads=0: the parser renders chunks on every core while we convert.
        parser = PyEvtxParser(str(path), number_of_threads=0)
    except (OSError, RuntimeError, ValueError) as exc:
        raise LogFormatError(1, f"not a readable EVTX file: {exc}") from exc
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    loads = orjson.loads
    limit = ctx.batch_rows
    number = 0
    records = parser.records_json()
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except (OSError, RuntimeError, ValueError) as exc:
            # The Rust parser stops at a damaged chunk; what it gave before stays.
            yield from _flush(path, ctx, rows)
            raise LogFormatError(number + 1, f"damaged EVTX record: {exc}") from exc
        number += 1
        try:
            event = loads(record["data"]).get("Event") or {}
            append(_row(number, record.get("timestamp", ""), event))
        except (ValueError, AttributeError, TypeError) as exc:
            ctx.warn(number, f"unreadable event: {exc}")
        if len(rows) >= limit:
            yield from _flush(path, ctx, rows)
            rows = []
            append = rows.append
    yield from _flush(path, ctx, rows)
    short = _missing_chunks(path)
    if short:
        raise LogFormatError(number + 1, short)


def _missing_chunks(path: Path) -> str | None:
    """The parser skips a chunk cut short in silence; the file header says how many there were."""
    with path.open("rb") as f:
        header = f.read(HEADER_BYTES)
    if len(header) < 44:
        return "file header cut short"
    announced = int.from_bytes(header[42:44], "little")
    present = (path.stat().st_size - HEADER_BYTES) // CHUNK_BYTES
    if present < announced:
        return f"truncated: the header announces {announced} chunks, the file holds {present}"
    return None


def _array(
    name: str,
    column: tuple[Any, ...],
    kind: pa.DataType,
    records: tuple[int, ...],
    ctx: ReadContext,
) -> pa.Array:
    """One batch's column; a number too large for its field (a damaged record's EventID of 2^40)
    is warned about and left unset, the rest of its record kept."""
    try:
        return pa.array(column, type=kind)
    except (OverflowError, pa.ArrowInvalid):
        if not pa.types.is_integer(kind):
            raise
    info = np.iinfo(kind.to_pandas_dtype())
    fitted = []
    for record, value in zip(records, column, strict=True):
        if value is not None and not info.min <= value <= info.max:
            ctx.warn(record, f"field {name}: {value} is out of range")
            value = None
        fitted.append(value)
    return pa.array(fitted, type=kind)


def _times(when: pa.Array) -> pa.Array:
    """``ts`` from the ``when`` text: System/TimeCreated's one format, the general parser after."""
    try:
        # Every record in the ISO 8601 shape evtx writes: one Arrow cast, no format trials.
        ns = pc.cast(when, pa.timestamp("ns", "UTC"))
        return pc.cast(ns, pa.timestamp("us", "UTC"), safe=False)
    except pa.ArrowInvalid:
        pass
    text = pl.Series("when", when)
    ts = text.str.to_datetime(SYSTEM_TIME, strict=False, time_unit="us", time_zone="UTC")
    if ts.null_count():
        rest = pl.select(parse_times(pl.lit(text).str.replace(r" UTC$", ""))).to_series()
        ts = ts.fill_null(rest)
    return ts.to_arrow()


def _flush(
    path: Path, ctx: ReadContext, rows: list[tuple[Any, ...]]
) -> Iterator[tuple[str, pa.Table]]:
    if not rows:
        return
    values = list(zip(*rows, strict=True))
    # Logon events are rare in most files: a set test on the event ids, no Arrow call, says so.
    logon = not _LOGON_IDS.isdisjoint(values[5]) and "Security" in values[3]
    columns = {
        name: _array(name, column, kind, values[0], ctx)
        for (name, kind), column in zip(_COLUMNS, values, strict=True)
    }
    ts = _times(columns["when"])
    if ts.null_count:
        bad = pc.is_null(ts)
        ctx.warn_rows(
            pl.DataFrame({"record": pc.filter(columns["record"], bad)}).with_columns(
                reason=pl.lit("no time it could read")
            )
        )
        keep = pc.invert(bad)
        columns = {name: pc.filter(col, keep) for name, col in columns.items()}
        ts = pc.filter(ts, keep)
    if len(ts) == 0:
        return
    columns["ts"] = ts
    columns["uid"] = ctx.uids("W", columns["record"])
    columns["file"] = pa.repeat(pa.scalar(str(path), pa.string()), len(ts))
    winevt = pa.table(
        [columns[f.name] for f in schema_of("winevt")], names=schema_of("winevt").names
    )
    yield "winevt", winevt
    if logon:
        auth = logons(pl.from_arrow(winevt))  # type: ignore[arg-type]
        if auth.height:
            yield "auth", auth.to_arrow()


# Event id -> outcome; 4776 depends on its Status (0x0 is success).
_LOGON_EVENTS = {4624: "success", 4625: "failure", 4771: "failure", 4776: None}
_LOGON_IDS = frozenset(_LOGON_EVENTS)
_LOGON_FIELDS = (
    "TargetUserName", "TargetDomainName", "IpAddress", "IpPort", "LogonType",
    "AuthenticationPackageName", "Status", "SubStatus", "FailureReason", "Workstation",
    "WorkstationName",
)  # fmt: skip


def logons(winevt: pl.DataFrame) -> pl.DataFrame:
    """The Security channel's logon events of a ``winevt`` frame, as ``auth`` rows."""
    # One lazy query (one collect), its expressions built once: a file's batch is often small,
    # and Polars' per-query cost would otherwise outweigh its rows.
    found = _logon_query(winevt.lazy()).collect()
    if found.height == 0:
        return pl.DataFrame(schema=pl.from_arrow(schema_of("auth").empty_table()).schema)  # type: ignore[union-attr]
    return found


def _logon_query(winevt: pl.LazyFrame) -> pl.LazyFrame:
    where, decode, columns = _logon_exprs()
    return winevt.filter(where).with_columns(d=decode).unnest("d").select(**columns)


@cache
def _logon_exprs() -> tuple[pl.Expr, pl.Expr, dict[str, pl.Expr | str]]:
    where = pl.col("event_id").is_in(list(_LOGON_EVENTS)) & (pl.col("channel") == "Security")
    decode = pl.col("data").str.json_decode(pl.Struct({k: pl.String for k in _LOGON_FIELDS}))
    ip = pl.col("IpAddress").str.strip_chars().str.replace(r"^::ffff:", "")
    status = pl.col("Status").str.to_lowercase()
    outcome = (
        pl.when(pl.col("event_id") == 4776)
        .then(
            pl.when(status.is_in(["0x0", "0"])).then(pl.lit("success")).otherwise(pl.lit("failure"))
        )
        .when(pl.col("event_id") == 4624)
        .then(pl.lit("success"))
        .otherwise(pl.lit("failure"))
    )
    reason = pl.coalesce(pl.col("FailureReason"), pl.col("SubStatus"), pl.col("Status"))
    columns = dict(
        ts=pl.col("ts"),
        uid=pl.col("uid").str.replace(r"^W", "A"),
        file="file",
        record="record",
        host="host",
        source=pl.lit("winevt"),
        source_uid="uid",
        service=pl.when(pl.col("LogonType") == "10")
        .then(pl.lit("rdp"))
        .otherwise(pl.lit("windows")),
        outcome=outcome,
        user=pl.when(pl.col("TargetUserName").is_in(["-", ""]))
        .then(None)
        .otherwise(pl.col("TargetUserName")),
        invalid_user=pl.col("SubStatus").str.to_lowercase() == "0xc0000064",
        src_ip=pl.when(ip.is_in(["-", "", "127.0.0.1", "::1"]) | ip.is_null())
        .then(None)
        .otherwise(ip),
        src_port=pl.col("IpPort").cast(pl.UInt16, strict=False),
        dst_ip=pl.lit(None, pl.String),
        dst_port=pl.lit(None, pl.UInt16),
        method=pl.when(pl.col("event_id") == 4771)
        .then(pl.lit("kerberos"))
        .when(pl.col("event_id") == 4776)
        .then(pl.lit("ntlm"))
        .otherwise(pl.col("AuthenticationPackageName").str.to_lowercase()),
        logon_type=pl.col("LogonType").cast(pl.Int16, strict=False),
        reason=pl.when(outcome == "failure").then(reason).otherwise(None),
    )
    return where, decode, columns
