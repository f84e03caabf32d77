"""Every registered detector over 10 M connection records, beside a plain Python baseline.

The lake is synthetic but shaped like a site's day (``synth.py``: Zipf-popular servers, a resolver,
internal servers; dns/http/ssl rows for the conns of those services) with attacks injected: scans,
guessing, floods, reflection, C2 beacons, lateral fan-out, exfiltration, DGA and tunnelling. It is
written once by the project's own ``LakeWriter`` (in a child process, so generating it does not
count towards this process's memory) and read back as ``patrol`` reads it (``lake_frames``).

Measured, in one run:

* each detector alone through ``run_detectors(only=[id])`` (``--repeat-each``), then all together as
  ``patrol`` runs them (``run_detectors``: one detector after another, each spread by Polars over
  both cores);
* a plain Python per-record loop (dicts, one pass) doing the core counting of two detectors --
  failed first contacts per source and window (the scan counter) and short sessions per
  source, service port and window (the guessing counter) -- against ``scan.trw`` +
  ``bruteforce.service`` + ``bruteforce.ssh`` on the same first ``--baseline`` records;
* peak RSS (``ru_maxrss``) of this process.

    python benchmarks/bench_detect.py [--records 10000000] [--baseline 1000000] [--repeat 3]
        [--save-alerts DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def build_lake(path: Path, n: int, seed: int) -> None:
    """Write the synthetic lake (run in a child process)."""
    from synth import lake

    from mamori.lake.writer import LakeWriter

    tables = lake(n, seed)
    with LakeWriter(path) as w:
        for name, df in tables.items():
            if df.height:
                w.write(name, df.to_arrow())
    (path / "done").write_text(f"{n} {seed}\n")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def python_counters(rows: list[tuple], window_s: float = 900.0) -> tuple[float, int, int]:
    """The scan and guessing counters as a plain Python loop: (seconds, scanners, guessers)."""
    t = time.perf_counter()
    failed: dict[tuple, set] = {}
    sessions: dict[tuple, int] = {}
    watched = {21, 22, 23, 445, 3389, 5900, 5985, 5986}
    for ts, orig, resp, port, history, duration, state in rows:
        w = ts // int(window_s * 1_000_000)
        if state in ("S0", "REJ") and not any(c in history for c in "hHad"):
            failed.setdefault((orig, w), set()).add((resp, port))
        elif port in watched and state == "SF" and duration < 30.0:
            key = (orig, port, w)
            sessions[key] = sessions.get(key, 0) + 1
    scanners = {k[0] for k, v in failed.items() if len(v) >= 5}
    guessers = {k[0] for k, v in sessions.items() if v >= 10}
    return time.perf_counter() - t, len(scanners), len(guessers)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--baseline", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of all detectors together")
    ap.add_argument("--repeat-each", type=int, default=1, help="runs of each detector alone")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lake", type=Path, default=HERE / "work" / "synth-lake")
    ap.add_argument(
        "--skip", action="append", default=[], help="leave a detector out (say so in the results)"
    )
    ap.add_argument(
        "--save-alerts",
        type=Path,
        help="write each detector's alerts (run alone) and all together's to DIR/<id>.parquet, "
        "to compare a change's alerts with its predecessor's",
    )
    a = ap.parse_args()

    from synth import VERSION

    lake_dir = a.lake.with_name(f"{a.lake.name}-v{VERSION}-{a.records}-{a.seed}")
    if not (lake_dir / "done").exists():
        t = time.perf_counter()
        code = f"import bench_detect as b; b.build_lake(__import__('pathlib').Path({str(lake_dir)!r}), {a.records}, {a.seed})"
        subprocess.run([sys.executable, "-c", code], cwd=HERE, check=True)
        print(f"lake written to {lake_dir} in {time.perf_counter() - t:.0f} s")

    import polars as pl
    from synth import ATTACKERS

    from mamori.detect.base import registered
    from mamori.detect.detectors.intel_match import IntelMatchParams
    from mamori.detect.engine import lake_frames, run_detectors

    store = Path(tempfile.mkdtemp(prefix="mamori-bench-intel-"))  # an empty intel store
    params = {"intel.match": IntelMatchParams(store=str(store))}
    dets = {k: d for k, d in registered().items() if k not in a.skip}
    only = sorted(dets)
    if a.skip:
        print(f"left out: {', '.join(a.skip)}")
    tables = sorted({t for d in dets.values() for t in d.reads} | {"conn"})
    frames = lake_frames(lake_dir, tables)
    counts = {t: frames[t].select(pl.len()).collect().item() for t in tables}
    n_conn = counts["conn"]
    print(f"lake: {', '.join(f'{t} {c:,}' for t, c in counts.items() if c)}; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    rss0 = rss_mb()

    # warm: imports, the DGA model, Polars' first plans (a small slice of the same lake)
    small = {t: f.head(50_000) for t, f in frames.items()}
    run_detectors(small, params, only=only)

    per: dict[str, list[float]] = {d: [] for d in dets}
    per_cpu: dict[str, list[float]] = {d: [] for d in dets}
    found: dict[str, int] = {}
    for _ in range(a.repeat_each):
        for det_id in dets:
            c0, t = time.process_time(), time.perf_counter()
            run = run_detectors(frames, params, only=[det_id])
            per[det_id].append(time.perf_counter() - t)
            per_cpu[det_id].append(time.process_time() - c0)
            found[det_id] = run.alerts.height
            if a.save_alerts:
                a.save_alerts.mkdir(parents=True, exist_ok=True)
                run.alerts.write_parquet(a.save_alerts / f"{det_id}.parquet")
            if run.failed:
                print(f"  {det_id} FAILED: {run.failed}")
    together: list[float] = []
    cpu: list[float] = []
    for _ in range(a.repeat):
        c0, t = time.process_time(), time.perf_counter()
        run = run_detectors(frames, params, only=only)
        together.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c0)
    alerts = run.alerts
    rss_detect = rss_mb()
    if a.save_alerts:
        alerts.write_parquet(a.save_alerts / "together.parquet")

    # plain Python against the compiled counters on the same first records
    m = min(a.baseline, n_conn)
    head = frames["conn"].head(m).collect()
    t = time.perf_counter()
    rows = list(
        zip(
            head["ts"].dt.epoch("us").to_list(), head["orig_h"].to_list(),
            head["resp_h"].to_list(), head["resp_p"].to_list(), head["history"].fill_null("").to_list(),
            head["duration"].fill_null(0.0).to_list(), head["conn_state"].to_list(),
            strict=True,
        )
    )  # fmt: skip
    to_py = time.perf_counter() - t
    py, py_cpu = [], []
    for _ in range(a.repeat):
        c0 = time.process_time()
        py.append(python_counters(rows))
        py_cpu.append(time.process_time() - c0)
    head_frames = {**{k: f.head(0) for k, f in frames.items()}, "conn": head.lazy()}
    ours, ours_cpu = [], []
    for _ in range(a.repeat):
        c0, t = time.process_time(), time.perf_counter()
        run_detectors(
            head_frames, params, only=["scan.trw", "bruteforce.service", "bruteforce.ssh"]
        )
        ours.append(time.perf_counter() - t)
        ours_cpu.append(time.process_time() - c0)

    def spread(xs: list[float]) -> str:
        return f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})"

    print(f"\n{n_conn:,} conn records ({sum(counts.values()):,} rows in all tables), "
          f"repeat {a.repeat}: median (min–max) seconds\n")  # fmt: skip
    print("| detector | reads | seconds | CPU seconds | conn records/s | alerts |")
    print("|---|---|---:|---:|---:|---:|")
    for det_id, xs in sorted(per.items(), key=lambda kv: -statistics.median(kv[1])):
        rate = n_conn / statistics.median(xs)
        print(f"| {det_id} | {', '.join(dets[det_id].reads)} | {spread(xs)} | "
              f"{statistics.median(per_cpu[det_id]):.2f} | {rate / 1e6:.1f} M | {found[det_id]} |")  # fmt: skip
    med = statistics.median(together)
    print(f"| **all {len(dets)} together** (as patrol runs them) | | {spread(together)} | "
          f"{statistics.median(cpu):.2f} | **{n_conn / med / 1e6:.2f} M** | {alerts.height} |")  # fmt: skip
    print(
        f"\nCPU time of the run together: {spread(cpu)} s (CPU/wall {statistics.median(cpu) / med:.2f})"
    )
    print(f"peak RSS: {rss0:,.0f} MB after opening the lake, {rss_detect:,.0f} MB after detection")

    by_src = alerts.group_by("detector").agg(pl.col("src").unique(), pl.col("dst").unique())
    print("\ninjected attacks:")
    for what, ip in ATTACKERS.items():
        hit = by_src.filter(pl.col("src").list.contains(ip) | pl.col("dst").list.contains(ip))
        print(f"  {what} ({ip}): {', '.join(sorted(hit['detector'])) or 'NOT FOUND'}")
    noisy = alerts.group_by("detector").len().sort("len", descending=True)
    print("alerts per detector:", dict(noisy.iter_rows()))

    py_s = statistics.median([p[0] for p in py])
    ours_s = statistics.median(ours)
    print(f"\nbaseline on the first {m:,} conn records (median of {a.repeat}):")
    print(f"  plain Python loop (scan + guessing counters): {py_s:.2f} s = {m / py_s / 1e6:.2f} M records/s "
          f"(+ {to_py:.2f} s to turn the columns into Python tuples, not counted); "
          f"{py[0][1]} scanners, {py[0][2]} guessers")  # fmt: skip
    print(f"  mamori scan.trw + bruteforce.service + bruteforce.ssh: {ours_s:.2f} s = "
          f"{m / ours_s / 1e6:.2f} M records/s -> {py_s / ours_s:.1f}x the loop")  # fmt: skip
    pc, oc = statistics.median(py_cpu), statistics.median(ours_cpu)
    print(f"  CPU seconds: loop {pc:.2f}, mamori {oc:.2f} (both cores) -> {pc / oc:.1f}x the loop "
          f"per CPU-second")  # fmt: skip


if __name__ == "__main__":
    main()
