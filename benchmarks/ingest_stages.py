"""CPU seconds of each stage of ``mamori ingest`` on one capture, in one process.

    python benchmarks/ingest_stages.py benchmarks/work/workload.pcap [--shard 0/2]

Wraps the pipeline's stage functions with a CPU timer (``time.process_time``) and runs
``Ingest.capture`` into a scratch lake, in a process prepared as ingest prepares its own (Arrow's
pool, no pandas: ``flows.memory``) and under the garbage-collector policy ingest runs captures
with (``flows.collector.rare_collection``). Where the time goes, not how fast ingest is: the
wrappers cost a little, and a busy machine changes the totals, not much the proportions.
``analyze`` is the protocol analysers (and the UDP DNS conversations ``dns columns`` hands back
to them); ``dns columns`` is the column path for UDP DNS (``flows/dns_batch.py``); ``route``
includes ``route/candidates`` and ``route/decide``; ``route/settle`` (copying out the payload of
connections that outlive their batch) runs after the batch's conversations, outside ``route``;
``analyze/<service>`` splits ``analyze`` by analyser. ``--shard 0/2`` times what one of the two
processes of ``mamori ingest`` does (it still reads and decodes every packet).
"""

from __future__ import annotations

import argparse
import collections
import functools
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from mamori.flows.memory import WithoutScipy, hide, prepare_ingest_process
from mamori.jitcache import quick_cache_loads

prepare_ingest_process()  # before pyarrow loads, as the ingest command prepares its process
hide(WithoutScipy)  # as the command does (cli._as_kernel_program): Numba's BLAS probe imports SciPy
quick_cache_loads()  # as the command does: cached kernels load without the compiler set-up

import mamori.flows.payload as PL  # noqa: E402
import mamori.flows.pipeline as P  # noqa: E402
from mamori.config import Settings  # noqa: E402
from mamori.flows.analyzers.base import registered  # noqa: E402
from mamori.flows.collector import rare_collection  # noqa: E402
from mamori.lake.writer import LakeWriter  # noqa: E402

acc: collections.Counter[str] = collections.Counter()


def wrap(obj: Any, name: str, label: str) -> None:
    f = getattr(obj, name, None)
    if f is None:
        return

    @functools.wraps(f)
    def timed(*a: Any, **k: Any) -> Any:
        t = time.process_time()
        try:
            return f(*a, **k)
        finally:
            acc[label] += time.process_time() - t

    setattr(obj, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument(
        "--shard", default="0/1", help="K/N: one worker's shard, as `mamori ingest` runs it (0/2)"
    )
    a = ap.parse_args()
    k, n = (int(x) for x in a.shard.split("/"))
    for service, analyzer in registered().items():
        wrap(analyzer, "analyze", f"analyze/{service}")
    wrap(P, "decode", "decode")
    wrap(P.FragmentReassembler, "apply", "fragments")
    wrap(P.ConnTracker, "feed", "track")
    wrap(P.PayloadRouter, "route", "route")
    wrap(PL, "candidates", "route/candidates")
    wrap(PL.PayloadRouter, "_decide", "route/decide")
    wrap(PL.PayloadRouter, "settle", "route/settle")
    wrap(P, "conn_columns", "conn columns")
    wrap(P, "tunnel_parents", "conn columns")
    wrap(P, "_jobs", "conversations")
    wrap(P, "analyze_jobs", "analyze")
    wrap(P, "analyze_dns_batch", "dns columns")
    wrap(P, "_to_table", "rows to Arrow")
    lake = Path(tempfile.mkdtemp(prefix="mamori-stages-"))
    try:
        writer = LakeWriter(lake)
        wrap(writer, "write", "lake writer")
        t0 = time.process_time()
        with rare_collection():  # as ingest runs every capture (flows/workers.py)
            stats = P.Ingest(Settings(), writer).capture(a.capture, (k, n))
        t1 = time.process_time()
        writer.close()
        acc["lake writer"] += time.process_time() - t1
        total = time.process_time() - t0
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    print(
        f"{stats.packets:,} packets, {total:.2f} CPU-s ({stats.packets / total / 1e3:.0f} k/CPU-s)"
    )
    for k, v in acc.most_common():
        print(f"  {k:18s} {v:6.2f}  {v / total * 100:4.1f} %")


if __name__ == "__main__":
    main()
