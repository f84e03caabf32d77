"""Cowrie honeypot JSON logs into the ``honeypot`` table.

Cowrie writes one JSON object per event (``cowrie.session.connect``, ``cowrie.login.failed``,
``cowrie.command.input``, ``cowrie.session.file_download``, ...) with the session id that ties an
attacker's events together. Honeypot logins are deliberately *not* written to ``auth``: a
"successful" login to a honeypot compromises nothing, and the auth detectors would call it a guessed
account; the honeypot detector summarises them per attacker instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa

from mamori.schema import schema_of
from mamori.sensors.logs._lines import line_batches, parse_times
from mamori.sensors.registry import ReadContext, log_sensor

# Cowrie's key -> our column, each read as text first (a value's JSON type varies by version).
_FIELDS: dict[str, str] = {
    "eventid": "event",
    "timestamp": "when",
    "session": "session",
    "sensor": "host",
    "src_ip": "src_ip",
    "src_port": "src_port",
    "dst_ip": "dst_ip",
    "dst_port": "dst_port",
    "protocol": "protocol",
    "username": "username",
    "password": "password",
    "input": "input",
    "url": "url",
    "shasum": "shasum",
    "version": "client",
    "hassh": "hassh",
    "duration": "duration",
    "message": "message",
    "system": "system",
}


def sniff(head: bytes) -> bool:
    line = head.lstrip().split(b"\n", 1)[0].strip()
    if not line.startswith(b"{"):
        return False
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return isinstance(event, dict) and str(event.get("eventid", "")).startswith("cowrie.")


def _decode(lines: pl.Series) -> pl.DataFrame:
    """Every field as text: one JSON parse per line, or per field when a line has odd types."""
    try:
        decoded = lines.str.json_decode(pl.Struct({k: pl.String for k in _FIELDS}))
        return decoded.struct.unnest().rename(_FIELDS)
    except pl.exceptions.ComputeError:
        # A field holding a list or object somewhere: path matching takes any type as text.
        return pl.DataFrame(
            {col: lines.str.json_path_match(f"$.{key}") for key, col in _FIELDS.items()}
        )


@log_sensor("cowrie", tables=("honeypot",), sniff=sniff, priority=50)
def read(path: Path, ctx: ReadContext) -> Iterator[tuple[str, pa.Table]]:
    """Cowrie SSH/Telnet honeypot JSON lines: every event of every attacker's session."""
    for numbers, lines in line_batches(path):
        frame = pl.DataFrame({"record": pl.Series(numbers), "line": pl.Series(lines)}).filter(
            pl.col("line").str.strip_chars().str.len_bytes() > 0
        )
        frame = frame.with_columns(
            ok=pl.col("line").str.json_path_match("$.eventid").str.starts_with("cowrie.")
        ).with_columns(pl.col("ok").fill_null(False))
        bad = frame.filter(~pl.col("ok"))
        ctx.warn_rows(bad.select("record", reason=pl.lit("not a Cowrie JSON event")))
        good = frame.filter("ok")
        if good.height == 0:
            continue
        fields = _decode(good["line"])
        table = (
            pl.concat([good.select("record"), fields], how="horizontal")
            .with_columns(ts=parse_times(pl.col("when")))
            .with_columns(
                # Older Cowrie versions name no protocol; the transport in ``system`` does.
                protocol=pl.coalesce(
                    "protocol",
                    pl.when(pl.col("system").str.contains("(?i)telnet"))
                    .then(pl.lit("telnet"))
                    .when(pl.col("system").is_not_null())
                    .then(pl.lit("ssh")),
                ),
                src_port=pl.col("src_port").cast(pl.UInt16, strict=False),
                dst_port=pl.col("dst_port").cast(pl.UInt16, strict=False),
                duration=pl.col("duration").cast(pl.Float64, strict=False),
            )
        )
        late = table.filter(pl.col("ts").is_null())
        ctx.warn_rows(late.select("record", reason=pl.lit("no timestamp it could read")))
        table = table.filter(pl.col("ts").is_not_null())
        table = table.with_columns(
            uid=pl.Series(ctx.uids("H", table["record"].to_arrow())), file=pl.lit(str(path))
        )
        yield "honeypot", table.select(schema_of("honeypot").names).to_arrow()
