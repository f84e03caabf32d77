"""JSON-lines logs of any kind into the ``jsonlog`` table: the generic fallback.

Applications, cloud audit trails and shippers write one JSON object per line with no common
schema; the object is kept whole and only its time is interpreted, from the first of the usual
timestamp keys that parses. More specific JSON formats (Suricata EVE, Zeek JSON, Cowrie) have their
own sensors, sniffed before this one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa

from mamori.sensors.logs._lines import line_batches, parse_times
from mamori.sensors.registry import ReadContext, log_sensor

TIME_KEYS: tuple[str, ...] = (
    "@timestamp", "timestamp", "ts", "time", "eventTime", "datetime", "date", "EventTime",
)  # fmt: skip
HOST_KEYS: tuple[str, ...] = ("host", "hostname", "Hostname", "computer", "Computer", "sensor")


def sniff(head: bytes) -> bool:
    line = head.lstrip().split(b"\n", 1)[0].strip()
    if not line.startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _member(key: str) -> pl.Expr:
    """A top-level member as text (bracket notation: keys like ``@timestamp`` are not paths)."""
    return pl.col("data").str.json_path_match(f"$['{key}']")


@log_sensor("jsonl", tables=("jsonlog",), sniff=sniff, priority=900)
def read(path: Path, ctx: ReadContext) -> Iterator[tuple[str, pa.Table]]:
    """Any JSON-lines log: the object in ``data``, its time from the usual keys."""
    dataset = path.name.split(".", 1)[0]
    for numbers, lines in line_batches(path):
        frame = pl.DataFrame({"record": pl.Series(numbers), "data": pl.Series(lines)}).filter(
            pl.col("data").str.strip_chars().str.len_bytes() > 0
        )
        frame = frame.with_columns(
            ok=pl.col("data").str.strip_chars().str.starts_with("{")
            & pl.col("data").str.json_path_match("$").is_not_null(),
            when=pl.coalesce([_member(k) for k in TIME_KEYS]),
            host=pl.coalesce([_member(k) for k in HOST_KEYS]),
        ).with_columns(ts=parse_times(pl.col("when")))
        bad = frame.filter(~pl.col("ok") | pl.col("ts").is_null()).select(
            "record",
            reason=pl.when("ok")
            .then(pl.lit("no timestamp it could read"))
            .otherwise(pl.lit("not a JSON object")),
        )
        ctx.warn_rows(bad)
        good = frame.filter(pl.col("ok") & pl.col("ts").is_not_null())
        if good.height == 0:
            continue
        table = good.select(
            "ts",
            uid=pl.Series(ctx.uids("J", good["record"].to_arrow())),
            file=pl.lit(str(path)),
            record="record",
            host="host",
            dataset=pl.lit(dataset),
            data=pl.col("data").str.strip_chars(),
        ).to_arrow()
        yield "jsonlog", table
