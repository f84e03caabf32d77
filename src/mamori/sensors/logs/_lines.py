"""Shared machinery of the line-based log sensors: lines in batches, timestamps vectorised.

Lines are cut out of large binary chunks by Arrow (one split per chunk, not a Python string per
line), and numbered as a text editor numbers them, so a record number leads back to the file.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from mamori.sensors.gzipstream import GzipStream
from mamori.sensors.registry import LogFormatError

CHUNK_BYTES = 8 * 1024 * 1024
GZIP_STEP = 64 * 1024
# No log line is this long; a file that is (one huge JSON document) is not a line-based log, and
# reading on would hold all of it in memory.
MAX_LINE = 64 * 1024 * 1024


def line_batches(path: Path, chunk_bytes: int | None = None) -> Iterator[tuple[pa.Array, pa.Array]]:
    """``(record numbers, lines)`` per chunk: 1-based line numbers, lines without their ``\\n``.

    A gzip file is inflated as it is read (rotated logs); a truncated one raises ``EOFError``
    after every line before the cut has been yielded, and a damaged one stops the same way with
    :class:`LogFormatError` naming the first line not read. A line longer than ``MAX_LINE``
    stops the file with :class:`LogFormatError` naming it.
    """
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    stream = GzipStream(path.open("rb")) if gz else path.open("rb")
    step = GZIP_STEP if gz else chunk_bytes
    first = 1
    rest = b""
    with stream:
        eof = False
        while True:
            pieces = [rest]
            size = len(rest)
            want = max(chunk_bytes, size + 1)  # a carried-over partial line still needs more
            try:
                while size < want:
                    piece = stream.read(step)
                    if not piece:
                        eof = True
                        break
                    pieces.append(piece)
                    size += len(piece)
            except (EOFError, zlib.error) as exc:
                data = b"".join(pieces)
                if data:
                    numbers, lines = _split(data, first)
                    yield numbers, lines  # the partial last line too: it is all there is
                    first += len(lines)
                if isinstance(exc, zlib.error):
                    raise LogFormatError(first, f"the gzip stream is damaged ({exc})") from exc
                raise
            data = b"".join(pieces)
            if eof:
                body = data[:-1] if data.endswith(b"\n") else data
                if body:
                    yield _split(body, first)
                break
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) > MAX_LINE:
                    raise LogFormatError(first, f"a line longer than {MAX_LINE:,} bytes")
                rest = data
                continue
            rest = data[cut + 1 :]
            numbers, lines = _split(data[:cut], first)
            first += len(lines)
            yield numbers, lines


def _split(data: bytes, first: int) -> tuple[pa.Array, pa.Array]:
    text = data.decode("utf-8", errors="replace")
    lines = pc.list_flatten(pc.split_pattern(pa.array([text]), "\n"))
    lines = pc.utf8_rtrim(lines, "\r")
    numbers = pa.array(np.arange(first, first + len(lines), dtype=np.int64))
    return numbers, lines


_ISO = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S%#z",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
)


def parse_times(text: pl.Expr) -> pl.Expr:
    """Timestamps as logs write them: ISO 8601 (with ``Z``, an offset, or none: UTC) or epoch
    seconds, milliseconds or microseconds as numbers; null where none of these fits."""
    iso = pl.coalesce(
        [text.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC") for f in _ISO]
    )
    num = text.cast(pl.Float64, strict=False)
    micros = (
        pl.when(num.abs() >= 1e14)
        .then(num)
        .when(num.abs() >= 1e11)
        .then(num * 1e3)
        .otherwise(num * 1e6)
    )
    # A number past the range of microseconds since 1970 (or not finite) is no time: null.
    epoch = micros.round(0).cast(pl.Int64, strict=False).cast(pl.Datetime("us", "UTC"))
    return pl.coalesce(iso, epoch)
