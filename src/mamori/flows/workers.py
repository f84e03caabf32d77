"""Ingest one capture on every core: each process tracks and analyses one shard of its connections.

The per-connection work (tracking, reassembly, protocol parsers, Parquet encoding) dominates
ingest; the packets themselves are cheap to read again. So instead of passing packets or
conversations between processes (pickling them cost as much as analysing them), every worker reads
the whole capture, keeps the connections of its own shard (``flows.shards``) and writes its own
Parquet files into the same lake. The calling process is worker 0 and reports progress; uids do
not depend on the split, so one or two workers write the same records.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType

from mamori.config import Settings
from mamori.flows.collector import rare_collection
from mamori.flows.memory import forks_prepared, prepare_ingest_process
from mamori.flows.pipeline import CaptureStats, Ingest
from mamori.lake.writer import LakeWriter


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _shard(path: Path, settings: Settings, lake: Path, k: int, n: int) -> CaptureStats:
    with LakeWriter(lake, compression=settings.lake_compression) as writer, rare_collection():
        return Ingest(settings, writer).capture(path, (k, n))


class LakeIngest:
    """Captures into a lake, each split over ``settings.workers`` processes when it is large."""

    def __init__(self, settings: Settings, lake: Path) -> None:
        self.settings = settings
        self.lake = Path(lake)
        self.workers = settings.workers or usable_cores()
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1 and _can_fork():
            self._pool = _forked_pool(self.workers - 1)
        self.writer = LakeWriter(self.lake, compression=settings.lake_compression)

    def __enter__(self) -> LakeIngest:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.writer.close()
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def capture(self, path: Path, progress: Callable[[int], None] | None = None) -> CaptureStats:
        n = self.workers
        if n <= 1 or path.stat().st_size < self.settings.parallel_min_bytes:
            with rare_collection():
                return Ingest(self.settings, self.writer, progress).capture(path)
        # Each process reads batches of the full size: halving them per worker cost ~1 CPU-s of
        # per-batch overhead on the 5.05 M-packet workload for ~35 MB less peak (session 7), and
        # the whole tree stays far under the 1 GiB bound on a capture of several GB.
        settings = self.settings
        if self._pool is None:
            # spawn, not fork, in any other process than a prepared one (see ``_forked_pool``):
            # Polars' and Numba's threads do not survive a fork safely. The initializer is
            # unpickled and run before the first task imports pyarrow (memory.py).
            self._pool = ProcessPoolExecutor(
                n - 1, mp_context=mp.get_context("spawn"), initializer=prepare_ingest_process
            )
        others: list[Future[CaptureStats]] = [
            self._pool.submit(_shard, path, settings, self.lake, k, n) for k in range(1, n)
        ]
        with rare_collection():
            mine = Ingest(settings, self.writer, progress).capture(path, (0, n))
            # The rows still buffered are written now, while the other workers finish theirs
            # (each of them flushes before returning), not after the last of them.
            self.writer.close()
        return merge([mine, *(f.result() for f in others)])


def _can_fork() -> bool:
    """A fork is as good as a spawned worker and safe: the process was prepared for ingest, and
    no other Python thread runs (a progress bar's, an executor's) whose locks a fork would copy
    held. Native threads (OpenBLAS, jemalloc, Polars' spill cleaner) handle a fork or go unused."""
    return (
        forks_prepared() and threading.active_count() == 1 and "fork" in mp.get_all_start_methods()
    )


def _forked_pool(n: int) -> ProcessPoolExecutor:
    """Workers forked now, from a process prepared for ingest (``memory.forks_prepared``).

    A spawned worker starts a fresh interpreter and imports everything ingest needs before its
    first packet, which made it finish about half a second after the calling process on the
    workload: the whole run's wall time. A fork has all that already and exits without tearing
    an interpreter down. It is taken as the ingest starts, before the caller runs anything of
    its own (a progress bar's thread, Polars or Numba thread pools, an open lake writer): the
    threads present then (OpenBLAS, jemalloc, Polars' idle spill cleaner) are fork-safe or
    unused by ingest, which never calls Polars.
    """
    pool = ProcessPoolExecutor(n, mp_context=mp.get_context("fork"))
    with warnings.catch_warnings():
        # Python 3.12 warns of any fork from a process with threads, whichever they are.
        warnings.simplefilter("ignore", DeprecationWarning)
        pool.submit(os.getpid).result()  # a fork context starts all its processes at once
    return pool


def merge(parts: list[CaptureStats]) -> CaptureStats:
    """One capture's stats from its shards: every shard read every packet; rows add up."""
    first = parts[0]
    out = CaptureStats(first.path, first.packets, first.bytes, first.problem, first.error)
    out.notices = list(first.notices)  # (every shard read every record: the same notices)
    for part in parts:
        out.error = out.error or part.error
        for table, rows in part.rows.items():
            out.rows[table] = out.rows.get(table, 0) + rows
    return out
