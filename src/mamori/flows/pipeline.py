"""Captures in, Zeek-compatible tables out: the patrol's first stage.

For every batch: decode (compiled), track connections (compiled), hand the payload of recognised
connections to their analyser; for every connection that ended, emit its conn row and the rows its
analyser produced. Tables come out as Arrow batches through a callback, so a caller can stream them
into the lake without holding a whole capture's records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mamori.config import Settings
from mamori.flows import dns_batch
from mamori.flows import tracker as T
from mamori.flows.analyzers.base import Analysis, Analyzer, registered
from mamori.flows.conn_columns import conn_columns, network_table, tunnel_parents
from mamori.flows.connections import ConnTracker, Ended
from mamori.flows.conversation import Conversation, Segment
from mamori.flows.memory import keep_memory_flat
from mamori.flows.payload import PayloadRouter, _among, _Pending, fill_many, payload_of
from mamori.flows.shards import keep_owned, keep_shard
from mamori.schema import schema_of
from mamori.sensors.pcap.decode import decode
from mamori.sensors.pcap.fragments import FragmentReassembler
from mamori.sensors.pcap.notices import CaptureNotices
from mamori.sensors.pcap.reader import CaptureError, CaptureProblem, PcapReader
from mamori.sensors.seed import content_digest

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
    # Packets read but not (fully) analysed: undecoded link types, snaplen cuts (``notices``).
    notices: list[CaptureProblem] = field(default_factory=list)


def _to_table(table: str, rows: list[dict[str, object]]) -> pa.Table:
    """Analyser records (dicts, ``ts`` in float seconds) as an Arrow table of the lake schema.

    The dicts become one struct array in one call (a key a record lacks is null, as with
    ``Table.from_pylist``, which costs a conversion per column): a batch's tables are small and
    many, so the per-call cost is what counts.
    """
    got = _LOOSE.get(table)
    if got is None:
        schema = schema_of(table)
        loose = [pa.field("ts", pa.float64()) if f.name == "ts" else f for f in schema]
        got = _LOOSE[table] = (pa.struct(loose), schema.get_field_index("ts"), schema.field("ts"))
    struct, at, ts = got
    data = pa.Table.from_struct_array(pa.array(rows, type=struct))
    micros = pc.cast(pc.round(pc.multiply(data.column(at), 1e6)), pa.int64()).cast(ts.type)
    return data.set_column(at, ts, micros)


def _fitting_table(table: str, rows: list[dict[str, object]]) -> pa.Table:
    """:func:`_to_table`, dropping (and logging as the analyser bug it is) a record with a value
    its lake column cannot hold, instead of stopping the ingest: an FTP reply's port of 69190
    once did. Record by record only when the batch's conversion fails."""
    try:
        return _to_table(table, rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    good = []
    for row in rows:
        try:
            _to_table(table, [row])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            log.error("a %s record its table cannot hold was dropped (%s): %r", table, exc, row)
            continue
        good.append(row)
    return _to_table(table, good)


# Per table: the struct type records are read into (``ts`` as float seconds), and its ts field.
_LOOSE: dict[str, tuple[pa.StructType, int, pa.Field]] = {}


class Ingest:
    """Turns one or more captures into tables, emitting them through ``sink``."""

    def __init__(
        self, settings: Settings, sink: Sink, progress: Callable[[int], None] | None = None
    ):
        self.settings = settings
        self.sink = sink
        self.progress = progress
        self._nets: np.ndarray | None = None

    def run(self, paths: Iterable[Path]) -> list[CaptureStats]:
        return [self.capture(Path(p)) for p in paths]

    def capture(self, path: Path, shard: tuple[int, int] = (0, 1)) -> CaptureStats:
        """One capture; with ``shard=(k, n)`` only the connections of shard k of n (see shards)."""
        keep_memory_flat()
        stats = CaptureStats(str(path))
        seed = capture_seed(path)
        tracker = ConnTracker(self.settings)
        router = PayloadRouter()
        reader = PcapReader(path, self.settings.batch_bytes)
        fragments = FragmentReassembler()
        notices = CaptureNotices()
        try:
            for batch in reader:
                notices.observe(batch)
                buf, pk = fragments.apply(batch.buf, decode(batch, shard))
                foreign = keep_shard(pk, *shard)
                rec = pk["rec"]
                ts = batch.ts_ns[rec]
                rec_no = batch.first_record + rec.astype(np.int64) + 1
                row_conn, row_orig = tracker.feed(pk, ts, rec_no)
                # Another worker's tunnel carriers: tracked for what they carry, analysed there.
                row_conn[foreign] = -1
                router.route(buf, row_conn, row_orig, ts, pk.cols)
                stats.packets += len(batch)
                stats.bytes += int(batch.caplen.sum()) + 16 * len(batch)
                self._emit(tracker.take(), router, seed, stats, shard)
                if self.progress:
                    self.progress(reader.bytes_read)
            tracker.finish()
            self._emit(tracker.take(), router, seed, stats, shard)
        except CaptureError as exc:
            stats.error = str(exc)
            return stats
        finally:
            stats.notices = notices.problems(str(path))
        stats.problem = reader.problem
        return stats

    def _emit(
        self,
        ended: Ended | None,
        router: PayloadRouter,
        seed: bytes,
        stats: CaptureStats,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        """Ended connections: run their conversations through the analysers, write the rows.

        Then the router copies out what it keeps of the batch's payload (its buffer is reused).
        Another worker's tunnel carriers, tracked here too (``shards``), are left to it.
        """
        if ended is not None and shard[1] > 1:
            ended = ended.head(
                keep_owned(ended.state, ended.hist, ended.hist_len, ended.size, *shard)
            )
        if ended is None:
            router.settle()
            return
        if self._nets is None:
            self._nets = network_table(self.settings.local_nets)
        cols = conn_columns(
            ended.state, ended.size, ended.hist, ended.hist_len, seed, self._nets, stats.path
        )
        nos = ended.state[:, T.C_NO]
        rows, jobs, batch, dns_rows = _jobs(cols, ended.state, router)
        router.settle()
        # Ended connections the router never decided on are forgotten with them.
        router.forget(nos)
        cols["tunnel_parents"] = tunnel_parents(seed, ended.state[:, T.C_PARENT])
        dns_table, fast_rows, fast_services, more = analyze_dns_batch(batch, dns_rows)
        services, records = analyze_jobs(jobs + more)
        services.update(fast_services)
        more_rows = dns_rows[np.isin(dns_rows, fast_rows, invert=True)]
        rows = np.concatenate([rows, more_rows, fast_rows])
        self._write(cols, nos, rows, (services, records), stats)
        if dns_table is not None:
            self._send("dns", dns_table, stats)

    def _write(
        self,
        cols: dict[str, pa.Array],
        nos: np.ndarray,
        rows: np.ndarray,
        result: Analysed,
        stats: CaptureStats,
    ) -> None:
        services, records = result
        cols["service"] = _service_column(nos.shape[0], nos[rows], rows, services)
        schema = schema_of("conn")
        conn = pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)
        self._send("conn", conn, stats)
        for table, recs in records.items():
            self._send(table, _fitting_table(table, recs), stats)

    def _send(self, table: str, data: pa.Table, stats: CaptureStats) -> None:
        if data.num_rows:
            stats.rows[table] = stats.rows.get(table, 0) + data.num_rows
            self.sink(table, data)


# Analysis is a pure function of its jobs (no shared state), so an engine may run it elsewhere.
Job = tuple[int, str, Conversation]  # (connection number, analyser's service, conversation)
Analysed = tuple[dict[int, str], dict[str, list[dict[str, object]]]]


def _jobs(
    cols: dict[str, pa.Array], state: np.ndarray, router: PayloadRouter
) -> tuple[np.ndarray, list[Job], dns_batch.Batch, np.ndarray]:
    """The conversations of the ended connections the router kept payload for, and their rows.

    UDP DNS conversations come out apart, as a ``dns_batch.Batch`` (their rows last): most of them
    are analysed in columns, without a Conversation each.
    """
    none = np.empty(0, np.int64)
    batch = dns_batch.Batch([], [], [], [], [], [], [], [])
    if not router.conns:
        return none, [], batch, none
    nos = state[:, T.C_NO]
    # Ended connections the router follows.
    wanted = np.nonzero(_among(nos, router.conns.keys(), len(router.conns)))[0]
    if wanted.size == 0:
        return none, [], batch, none
    take = pa.array(wanted)
    fields = [cols[c].take(take).to_pylist() for c in ("uid", "orig_h", "resp_h", "proto")]
    starts = ((state[wanted, T.C_START] // 1000) / 1e6).tolist()
    partial = ((state[wanted, T.C_FLAGS] & T.FL_PARTIAL) != 0).tolist()
    ports = state[wanted][:, [T.C_OP, T.C_RP]].tolist()
    rows: list[int] = []
    dns_rows: list[int] = []
    jobs: list[Job] = []
    convs: list[Conversation] = []
    analyzers: list[Analyzer] = []
    kept: list[_Pending] = []
    dns_kept: list[_Pending] = []
    for row, no, uid, oh, rh, proto, ts, (op, rp), part in zip(
        wanted.tolist(), nos[wanted].tolist(), *fields, starts, ports, partial, strict=True
    ):
        got = router.claim(no, (proto, op, rp))
        if got is None:
            continue
        analyzer, pending = got
        if proto == "udp" and analyzer.service == "dns":
            dns_rows.append(row)
            batch.nos.append(no)
            batch.ts.append(ts)
            batch.uid.append(uid)
            batch.orig_h.append(oh)
            batch.orig_p.append(op)
            batch.resp_h.append(rh)
            batch.resp_p.append(rp)
            dns_kept.append(pending)
            continue
        conv = Conversation(uid, ts, oh, op, rh, rp, proto, partial=part and proto == "tcp")
        convs.append(conv)
        analyzers.append(analyzer)
        kept.append(pending)
        rows.append(row)
        jobs.append((no, analyzer.service, conv))
    # Every conversation's payload is assembled in one pass (the router's bytes are read while
    # the batch buffer they may point into is still unchanged).
    fill_many(convs, analyzers, kept)
    if dns_kept:
        batch.payload = payload_of(dns_kept)
    return np.array(rows, np.int64), jobs, batch, np.array(dns_rows, np.int64)


def analyze_dns_batch(
    batch: dns_batch.Batch, rows: np.ndarray
) -> tuple[pa.Table | None, np.ndarray, dict[int, str], list[Job]]:
    """UDP DNS conversations: columns for the common shapes, jobs for the Python analyser.

    Returns (dns rows, conn rows of the column-analysed conversations, their services, jobs).
    """
    if not batch.nos:
        return None, np.empty(0, np.int64), {}, []
    try:
        table, confirmed, rest = dns_batch.analyze(batch)
    except Exception:  # a bug of the column path must cost speed, never records
        log.exception("DNS column path failed; %d conversations go to the analyser", len(rows))
        table, confirmed, rest = None, np.zeros(len(rows), np.bool_), np.ones(len(rows), np.bool_)
    jobs: list[Job] = []
    for k in np.nonzero(rest)[0].tolist():
        conv = Conversation(
            batch.uid[k], batch.ts[k], batch.orig_h[k], batch.orig_p[k], batch.resp_h[k],
            batch.resp_p[k], "udp",
        )  # fmt: skip
        conv.segments = [Segment(t / 1e9, o, d) for t, o, _s, d in dns_batch.parts(batch, k)]
        jobs.append((batch.nos[k], "dns", conv))
    nos = np.array(batch.nos, np.int64)
    services = dict.fromkeys(nos[confirmed].tolist(), "dns")
    return table, rows[~rest], services, jobs


def _service_column(
    n: int, job_nos: np.ndarray, rows: np.ndarray, services: dict[int, str]
) -> pa.Array:
    """``service`` per conn row: what the analysers recognised, null elsewhere."""
    codes = np.full(n, -1, np.int32)
    names: dict[str, int] = {}
    # Row -> code of the rows whose connection has a service (a later pair wins, as writing one
    # row at a time would), then written into the column at once.
    coded = {
        row: names.setdefault(name, len(names))
        for no, row in zip(job_nos.tolist(), rows.tolist(), strict=True)
        if (name := services.get(no)) is not None
    }
    if coded:
        codes[np.fromiter(coded.keys(), np.int64, len(coded))] = list(coded.values())
    if not names:
        return pa.nulls(n, pa.string())
    indices = pa.array(codes, mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names))).cast(pa.string())


def analyze_jobs(jobs: list[Job]) -> Analysed:
    """Run each conversation through its analyser (in this process or a worker)."""
    analyzers = registered()
    services: dict[int, str] = {}
    records: dict[str, list[dict[str, object]]] = {}
    for no, service, conv in jobs:
        analyzer = analyzers[service]
        result = _safe_analyze(analyzer, conv)
        if result is None:
            continue
        if not result.inner:
            # Nearly every conversation: what ``services`` and ``tables`` give for an analysis
            # with no inner one, without the list and dict they build per conversation.
            if result.confirmed:
                services[no] = analyzer.service
            if result.records:
                got = records.get(analyzer.table)
                if got is None:
                    records[analyzer.table] = list(result.records)
                else:
                    got.extend(result.records)
            continue
        # An analyser may hand the stream on (SOCKS -> HTTP): Zeek logs both services.
        names = result.services(analyzer)
        if names:
            services[no] = ",".join(names)
        for table, rows in result.tables(analyzer).items():
            records.setdefault(table, []).extend(rows)
    return services, records


def capture_seed(path: Path) -> bytes:
    """A seed from the capture's bytes, not its path (``sensors.seed``): uids are the same
    wherever the file lies."""
    return content_digest(path, 16)


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
