"""Captures in, Zeek-compatible tables out: the patrol's first stage.

For every batch: decode (compiled), track connections (compiled), hand the payload of recognised
connections to their analyser; for every connection that ended, emit its conn row and the rows its
analyser produced. Tables come out as Arrow batches through a callback, so a caller can stream them
into the lake without holding a whole capture's records.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from mamori.config import Settings
from mamori.flows.analyzers.base import Analysis, Analyzer
from mamori.flows.connections import ConnTracker, Ended, conn_frame
from mamori.flows.conversation import Conversation
from mamori.flows.payload import PayloadRouter
from mamori.schema import schema_of
from mamori.sensors.pcap.decode import decode
from mamori.sensors.pcap.fragments import FragmentReassembler
from mamori.sensors.pcap.reader import CaptureError, CaptureProblem, PcapReader

log = logging.getLogger(__name__)

Sink = Callable[[str, pa.Table], None]


@dataclass
class CaptureStats:
    path: str
    packets: int = 0
    bytes: int = 0
    problem: CaptureProblem | None = None
    error: str | None = None
    rows: dict[str, int] = field(default_factory=dict)


def _to_table(table: str, rows: list[dict[str, object]]) -> pa.Table:
    schema = schema_of(table)
    cols: dict[str, list[object]] = {f.name: [] for f in schema}
    for r in rows:
        for name, values in cols.items():
            v = r.get(name)
            if name == "ts" and isinstance(v, float):
                v = round(v * 1e6)
            values.append(v)
    arrays = []
    for f in schema:
        vals = cols[f.name]
        if f.name == "ts":
            arrays.append(pa.array(vals, pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(vals, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class Ingest:
    """Turns one or more captures into tables, emitting them through ``sink``."""

    def __init__(
        self, settings: Settings, sink: Sink, progress: Callable[[int], None] | None = None
    ):
        self.settings = settings
        self.sink = sink
        self.progress = progress

    def run(self, paths: Iterable[Path]) -> list[CaptureStats]:
        return [self.capture(Path(p)) for p in paths]

    def capture(self, path: Path) -> CaptureStats:
        stats = CaptureStats(str(path))
        seed = hashlib.blake2b(f"{path.resolve()}:{path.stat().st_size}".encode()).digest()
        tracker = ConnTracker(self.settings)
        router = PayloadRouter()
        reader = PcapReader(path, self.settings.batch_bytes)
        fragments = FragmentReassembler()
        try:
            for batch in reader:
                buf, pk = fragments.apply(batch.buf, decode(batch))
                rec = pk["rec"]
                ts = batch.ts_ns[rec]
                rec_no = batch.first_record + rec.astype(np.int64) + 1
                row_conn, row_orig, _ = tracker.feed(pk, ts, rec_no)
                router.route(buf, row_conn, row_orig, ts, pk.cols)
                stats.packets += len(batch)
                stats.bytes += int(batch.caplen.sum()) + 16 * len(batch)
                self._emit(tracker.take(), router, seed, stats)
                if self.progress:
                    self.progress(reader.bytes_read)
        except CaptureError as exc:
            stats.error = str(exc)
            return stats
        tracker.finish()
        self._emit(tracker.take(), router, seed, stats)
        stats.problem = reader.problem
        return stats

    def _emit(
        self, ended: Ended | None, router: PayloadRouter, seed: bytes, stats: CaptureStats
    ) -> None:
        if ended is None:
            return
        df = conn_frame(ended, self.settings, seed, stats.path)
        services: dict[int, str] = {}
        records: dict[str, list[dict[str, object]]] = {}
        if router.conns:
            nos = df["conn_no"].to_numpy()
            wanted = np.nonzero(np.isin(nos, np.fromiter(router.conns.keys(), np.int64)))[0]
            sub = df[wanted] if wanted.size else None
            if sub is not None:
                for row in sub.iter_rows(named=True):
                    conv = Conversation(
                        uid=row["uid"],
                        ts=row["ts"].timestamp(),
                        orig_h=row["orig_h"],
                        orig_p=row["orig_p"],
                        resp_h=row["resp_h"],
                        resp_p=row["resp_p"],
                        proto=row["proto"],
                    )
                    got = router.finish(conv, row["conn_no"])
                    if got is None:
                        continue
                    analyzer, conv = got
                    result = _safe_analyze(analyzer, conv)
                    if result is None:
                        continue
                    # An analyser may hand the stream on (SOCKS -> HTTP): Zeek logs both services.
                    names = result.services(analyzer)
                    if names:
                        services[row["conn_no"]] = ",".join(names)
                    for table, rows in result.tables(analyzer).items():
                        records.setdefault(table, []).extend(rows)
        # Ended connections the router never decided on are forgotten with them.
        for no in df["conn_no"].to_list():
            router.ignored.discard(no)
        parent_uid = self._parent_uids(df, seed)
        df = df.with_columns(
            service=pl.Series(
                [services.get(n) for n in df["conn_no"].to_list()]
                if services
                else [None] * len(df),
                dtype=pl.String,
            ),
            tunnel_parents=parent_uid,
        )
        conn = df.select([f.name for f in schema_of("conn")]).to_arrow().cast(schema_of("conn"))
        self._send("conn", conn, stats)
        for table, rows in records.items():
            self._send(table, _to_table(table, rows), stats)

    def _parent_uids(self, df: pl.DataFrame, seed: bytes) -> pl.Series:
        from mamori.flows.connections import uids

        parents = df["parent_no"].to_numpy()
        has = parents >= 0
        out: list[list[str] | None] = [None] * len(df)
        if has.any():
            idx = np.nonzero(has)[0]
            names = uids(seed, parents[idx])
            for k, i in enumerate(idx.tolist()):
                out[i] = [names[k].decode()]
        return pl.Series("tunnel_parents", out, dtype=pl.List(pl.String))

    def _send(self, table: str, data: pa.Table, stats: CaptureStats) -> None:
        if data.num_rows:
            stats.rows[table] = stats.rows.get(table, 0) + data.num_rows
            self.sink(table, data)


def _safe_analyze(analyzer: Analyzer, conv: Conversation) -> Analysis | None:
    """An analyser that raises loses its own records, never the patrol (logged once per conn)."""
    try:
        return analyzer.analyze(conv)
    except Exception:
        log.exception("analyser %s failed on %s", analyzer.service, conv.uid)
        return None


def tables_of(
    paths: Iterable[Path], settings: Settings | None = None
) -> tuple[dict[str, pa.Table], list[CaptureStats]]:
    """Every table of some captures, in memory (tests, small inputs)."""
    parts: dict[str, list[pa.Table]] = {}

    def sink(table: str, data: pa.Table) -> None:
        parts.setdefault(table, []).append(data)

    stats = Ingest(settings or Settings(), sink).run(paths)
    return {t: pa.concat_tables(v) for t, v in parts.items()}, stats
