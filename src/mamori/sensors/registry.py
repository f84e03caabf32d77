"""Log sensors: one module per format, registered here so the core never names one.

A log sensor turns one file into rows of one or more lake tables, in bounded batches. It declares
how to recognise its format from the file's first bytes (``sniff``), because users hand mamori
folders of mixed logs and captures and file names lie (``cowrie.json.2018-05-06``, ``messages``,
``Security.evtx.bak``). Sniffers are tried from the most specific format to the most generic one
(``priority``: lower first), so a Suricata EVE file is not taken for plain JSON lines.

``read`` yields ``(table, pyarrow.Table)`` batches; what it cannot read in a record it reports
with :meth:`ReadContext.warn` and skips, so the good records before and after the damage are kept.
A problem that stops the file (a truncated EVTX chunk) raises :class:`LogFormatError`; the driver
(``sensors.logingest``) keeps every batch already yielded and reports the problem in one line.
"""

from __future__ import annotations

import importlib
import pkgutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from mamori.sensors.gzipstream import GzipStream
from mamori.sensors.seed import content_digest

if TYPE_CHECKING:  # Polars loads with the log sensors: a capture-only ingest never needs it
    import polars as pl

HEAD_BYTES = 64 * 1024  # what a sniffer sees: enough for a Zeek header or a few JSON lines
BATCH_ROWS = 50_000  # rows a sensor buffers per table before yielding: bounds its memory
MAX_WARNINGS = 20  # problems kept per file; the count says how many there were


class LogFormatError(Exception):
    """A problem that stops reading a log file; ``record`` is the first one not read (1-based)."""

    def __init__(self, record: int, reason: str) -> None:
        super().__init__(reason)
        self.record = record
        self.reason = reason


@dataclass
class ReadContext:
    """What a sensor needs besides the path: batch size, the uid seed, where problems go."""

    path: Path
    seed: str  # hex, from the file's content: uids are the same wherever the file lies
    batch_rows: int = BATCH_ROWS
    # The year of RFC 3164 timestamps, which have none (None: from the file's modification time).
    year: int | None = None
    # The zone RFC 3164 timestamps were written in (an IANA name): they carry none.
    timezone: str = "UTC"
    warnings: list[tuple[int, str]] = field(default_factory=list)
    warned: int = 0

    def warn(self, record: int, reason: str) -> None:
        """A record that could not be read; it is skipped and the file goes on."""
        self.warned += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append((record, reason))

    def warn_rows(self, bad: pl.DataFrame) -> None:
        """Many skipped records at once: a frame of ``record`` and ``reason``."""
        room = max(0, MAX_WARNINGS - len(self.warnings))
        self.warnings.extend(bad.select("record", "reason").head(room).iter_rows())
        self.warned += bad.height

    def uids(self, prefix: str, records: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Record uids, vectorised: ``<prefix><seed>.<record>`` (e.g. ``W3f9a1c2b7e.17``)."""
        text = pc.cast(records, pa.string())
        return pc.binary_join_element_wise(f"{prefix}{self.seed}", text, ".")


ReadFn = Callable[[Path, ReadContext], Iterator[tuple[str, pa.Table]]]


@dataclass(frozen=True)
class LogSensor:
    name: str
    tables: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    read: ReadFn
    priority: int
    doc: str


_SENSORS: dict[str, LogSensor] = {}


def log_sensor(
    name: str, *, tables: tuple[str, ...], sniff: Callable[[bytes], bool], priority: int = 100
) -> Callable[[ReadFn], ReadFn]:
    """Register a log sensor's ``read`` function under ``name``."""
    from mamori.schema import schema_of

    for table in tables:
        try:
            schema_of(table)
        except KeyError as exc:  # a table the lake does not know is a bug, found at import
            raise ValueError(f"log sensor {name!r}: {exc.args[0]}") from None

    def wrap(fn: ReadFn) -> ReadFn:
        if name in _SENSORS:
            raise ValueError(f"log sensor {name!r} registered twice")
        _SENSORS[name] = LogSensor(name, tables, sniff, fn, priority, (fn.__doc__ or "").strip())
        return fn

    return wrap


def registered_sensors() -> dict[str, LogSensor]:
    """Every log sensor, importing the modules of ``mamori.sensors.logs`` on first use."""
    from mamori.sensors import logs

    for mod in pkgutil.iter_modules(logs.__path__):
        importlib.import_module(f"{logs.__name__}.{mod.name}")
    return dict(sorted(_SENSORS.items(), key=lambda kv: (kv[1].priority, kv[0])))


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first bytes of a file, decompressed when it is gzip (rotated logs often are)."""
    with path.open("rb") as f:
        head = f.read(size)
    if head[:2] == b"\x1f\x8b":
        try:
            with GzipStream(path.open("rb")) as g:
                return g.read(size)  # what inflates before any damage (the damage is told later)
        except (OSError, EOFError, zlib.error):
            return b""
    return head


def sensor_for(path: Path, head: bytes | None = None) -> LogSensor | None:
    """The log sensor whose sniffer recognises the file, or None."""
    head = read_head(path) if head is None else head
    if not head:
        return None
    for sensor in registered_sensors().values():
        try:
            if sensor.sniff(head):
                return sensor
        except Exception:  # a sniffer that chokes on odd bytes simply does not recognise them
            continue
    return None


def content_seed(path: Path) -> str:
    """Ten hex digits from the file's content (``sensors.seed``), not its path."""
    return content_digest(path, 5).hex()
