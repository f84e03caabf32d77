"""Cutting a case's connections out of a capture: mamori's cutter beside tshark, same run.

The peer is what an examiner would otherwise do: ``tshark -r CAPTURE -Y FILTER -w OUT -F pcap``
with a display filter naming each connection's addresses, ports and frame range. Both are given
the same connections (a seeded sample of the capture's TCP/UDP IPv4 connections, from mamori's own
conn table, built before timing) and must write the same records; the outputs are compared record
by record (time, original length, bytes) with dpkt before any figure is reported.

    python benchmarks/bench_evidence.py [CAPTURE] [--connections 200] [--seed 7]

Default capture: ``benchmarks/work/main-base.pcap`` (``benchmarks/build_workload.sh``).
Results: ``benchmarks/results/evidence-<date>.json`` and a line for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dpkt
import polars as pl

from mamori.cases.cut import cut_capture
from mamori.flows.pipeline import tables_of

HERE = Path(__file__).resolve().parent


def _records(path: Path) -> list[tuple[float, bytes]]:
    with path.open("rb") as fh:
        return [(round(ts, 6), buf) for ts, buf in dpkt.pcap.Reader(fh)]


def _filter(conns: pl.DataFrame) -> str:
    parts = []
    for c in conns.iter_rows(named=True):
        port = "tcp.port" if c["proto"] == "tcp" else "udp.port"
        parts.append(
            f"(ip.addr=={c['orig_h']} && ip.addr=={c['resp_h']} && {port}=={c['orig_p']}"
            f" && {port}=={c['resp_p']} && frame.number>={c['first_record']}"
            f" && frame.number<={c['last_record']})"
        )
    return " || ".join(parts)


def result_cpu(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("capture", nargs="?", type=Path, default=HERE / "work" / "main-base.pcap")
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    capture: Path = args.capture
    tables, _ = tables_of([capture])
    conn = pl.from_arrow(tables["conn"])
    pool = conn.filter(pl.col("proto").is_in(["tcp", "udp"]) & ~pl.col("orig_h").str.contains(":"))
    chosen = pool.sample(min(args.connections, pool.height), seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "mamori.pcap", Path(tmp) / "tshark.pcap"
        # tshark's filter and the cut each once untimed (page cache, JIT), then timed.
        cut_capture(capture, chosen, ours)
        t0, c0 = time.perf_counter(), time.process_time()
        cut = cut_capture(capture, chosen, ours)
        t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
        filt = _filter(chosen)
        cmd = ["tshark", "-r", str(capture), "-Y", filt, "-w", str(theirs), "-F", "pcap"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        t_peer = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        same = _records(ours) == _records(theirs)
        if not same:
            raise SystemExit("mamori and tshark wrote different records: no figure reported")
    size = capture.stat().st_size
    result = {
        "date": datetime.now(UTC).isoformat(),
        "capture": str(capture),
        "capture_bytes": size,
        "connections": chosen.height,
        "packets_cut": cut.packets,
        "mamori_s": round(t_ours, 3),
        "mamori_cpu_s": round(c_ours, 3),
        "tshark_s": round(t_peer, 3),
        "tshark_cpu_s": round(result_cpu(before, after), 3),
        "speedup_wall": round(t_peer / t_ours, 1),
        "speedup_cpu": round(result_cpu(before, after) / c_ours, 1),
        "same_records": same,
    }
    out = HERE / "results" / f"evidence-{datetime.now(UTC):%Y-%m-%d}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"| {capture.name} ({size / 1e6:.0f} MB) | {chosen.height} | {cut.packets:,} | "
        f"{t_ours:.2f} ({c_ours:.2f}) | {t_peer:.2f} ({result['tshark_cpu_s']:.2f}) | "
        f"{result['speedup_wall']}× ({result['speedup_cpu']}×) |"
    )


if __name__ == "__main__":
    main()
