"""``mamori patrol`` against ``mamori ingest`` alone, on the ingest workload, in one run.

Patrol is ingest plus every detector, intel matching, correlation and the reports; the question is
what that costs on top of ingest. Both commands run as the user runs them (whole processes, under
``/usr/bin/time``), alternately, ``--repeat`` times after one untimed run of each (Numba's on-disk
cache warm, as for any user after the first run), each into a fresh lake. The intel store is a
private empty one (``XDG_DATA_HOME``), so a developer's store cannot change the figure.

    python benchmarks/bench_patrol.py [--capture benchmarks/work/workload-200k.pcap] [--repeat 3]
        [--baseline-src DIR]

``--stages``: then, on the lake of the last patrol round, time patrol's stages after ingest one by
one in a child process (opening the lake, detection as patrol runs it, the traffic charts,
correlation, writing the reports), in wall and CPU seconds, with the load average: where what
patrol adds to ingest goes.

``--baseline-src DIR``: also time ``mamori patrol`` with ``PYTHONPATH=DIR`` (another ``src`` tree,
e.g. this one with the detection files of an earlier commit) in the same rounds, so a change to
patrol is measured against its predecessor under the same load, beside the same ingest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from precompile import byte_compile_mamori

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall, user+sys CPU and peak RSS of one command (GNU time)."""
    fmt = "%e %U %S %M"
    out = Path(tempfile.mktemp(prefix="mamori-time-"))
    t = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", fmt, "-o", str(out), *cmd],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    e, u, s, m = out.read_text().split()[-4:]
    out.unlink()
    return {"wall": wall, "cpu": float(u) + float(s), "rss_mb": int(m) / 1024, "time_e": float(e)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", type=Path, default=HERE / "work" / "workload-200k.pcap")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-src", type=Path, help="a src tree to time patrol with as well")
    ap.add_argument("--stages", action="store_true", help="time patrol's stages after ingest")
    ap.add_argument("--stages-of", type=Path, help=argparse.SUPPRESS)  # the child's own mode
    a = ap.parse_args()
    if a.stages_of:
        # As the patrol command prepares its process (cli.patrol): pandas hidden before pyarrow
        # loads, so the first Arrow-to-Polars call does not import it (0.2 s that patrol never
        # pays, once counted in "open the lake").
        from mamori.flows.memory import prepare_ingest_process

        prepare_ingest_process()
        stages(a.stages_of)
        return
    # This interpreter's console script, as a venv runs it (not a version manager's shim).
    beside = Path(sys.executable).parent / "mamori"
    mamori = str(beside) if beside.is_file() else shutil.which("mamori") or "mamori"
    byte_compile_mamori()  # as an installed package has it (precompile.py)
    scratch = Path(tempfile.mkdtemp(prefix="mamori-bench-patrol-"))
    env = {**os.environ, "XDG_DATA_HOME": str(scratch / "xdg")}

    def ingest(i: int) -> list[str]:
        return [mamori, "ingest", str(a.capture), "--lake", str(scratch / f"ingest-{i}")]

    def patrol(i: int) -> list[str]:
        return [
            mamori, "patrol", str(a.capture), "--lake", str(scratch / f"patrol-lake-{i}"),
            "--out", str(scratch / f"patrol-{i}"),
        ]  # fmt: skip

    def base(i: int) -> list[str]:
        return [*patrol(1000 + i)]

    base_env = {**env, "PYTHONPATH": str(a.baseline_src.resolve())} if a.baseline_src else env
    timed(ingest(-1), env)
    timed(patrol(-1), env)
    if a.baseline_src:
        timed(base(-1), base_env)
    runs: list[tuple[dict[str, float], ...]] = []
    for i in range(a.repeat):
        load = os.getloadavg()[0]
        ing = timed(ingest(i), env)
        pat = timed(patrol(i), env)
        old = timed(base(i), base_env) if a.baseline_src else None
        runs.append((ing, pat) if old is None else (ing, pat, old))
        print(
            f"round {i + 1} (load {load:.1f}): ingest {ing['wall']:.1f} s wall / {ing['cpu']:.1f} s CPU / "
            f"{ing['rss_mb']:,.0f} MB, patrol {pat['wall']:.1f} s / {pat['cpu']:.1f} s / "
            f"{pat['rss_mb']:,.0f} MB -> {pat['wall'] / ing['wall']:.2f}x wall, "
            f"{pat['cpu'] / ing['cpu']:.2f}x CPU"
            + (
                f"; baseline patrol {old['wall']:.1f} s / {old['cpu']:.1f} s / "
                f"{old['rss_mb']:,.0f} MB -> {old['wall'] / ing['wall']:.2f}x wall, "
                f"{old['cpu'] / ing['cpu']:.2f}x CPU"
                if old
                else ""
            ),
            flush=True,
        )
        last = i == a.repeat - 1 and a.stages
        for d in (
            f"ingest-{i}",
            *([] if last else [f"patrol-lake-{i}"]),
            f"patrol-lake-{1000 + i}",
        ):
            shutil.rmtree(scratch / d, ignore_errors=True)
    report = json.loads((scratch / f"patrol-{a.repeat - 1}" / "report.json").read_text())
    summary = report["summary"]

    def med(key: str, side: int) -> float:
        return statistics.median(r[side][key] for r in runs)

    def ratio(key: str, side: int = 1) -> str:
        xs = [r[side][key] / r[0][key] for r in runs]
        return f"{statistics.median(xs):.2f}× ({min(xs):.2f}–{max(xs):.2f})"

    size = a.capture.stat().st_size / 1e6
    print(f"\n{a.capture.name}: {summary['packets']:,} packets, {size:,.0f} MB, "
          f"{summary['connections']:,} connections; patrol found {summary['alerts']} alerts, "
          f"{summary['incidents']} incidents; repeat {a.repeat}, median (min–max)\n")  # fmt: skip
    print("| command | wall s | CPU s | peak RSS MB |")
    print("|---|---:|---:|---:|")
    for side, name in ((0, "mamori ingest"), (1, "mamori patrol")):
        print(
            f"| {name} | {med('wall', side):.1f} | {med('cpu', side):.1f} | {med('rss_mb', side):,.0f} |"
        )
    print(f"| **patrol / ingest** | **{ratio('wall')}** | {ratio('cpu')} | {ratio('rss_mb')} |")
    if a.baseline_src:
        print(f"| baseline patrol ({a.baseline_src}) | {med('wall', 2):.1f} | {med('cpu', 2):.1f} | "
              f"{med('rss_mb', 2):,.0f} |")  # fmt: skip
        print(f"| baseline patrol / ingest | {ratio('wall', 2)} | {ratio('cpu', 2)} | "
              f"{ratio('rss_mb', 2)} |")  # fmt: skip
        old = json.loads((scratch / f"patrol-{1000 + a.repeat - 1}" / "report.json").read_text())
        print(f"baseline patrol found {old['summary']['alerts']} alerts, "
              f"{old['summary']['incidents']} incidents")  # fmt: skip
    print(f"\nPATROL / INGEST (wall, median of {a.repeat}): {ratio('wall')}; CPU {ratio('cpu')}; "
          f"patrol peak RSS {med('rss_mb', 1):,.0f} MB (largest process)")  # fmt: skip
    if a.stages:
        lake = scratch / f"patrol-lake-{a.repeat - 1}"
        print("\nStages after ingest, on the last round's lake (child process):", flush=True)
        subprocess.run([sys.executable, __file__, "--stages-of", str(lake)], env=env, check=True)
    shutil.rmtree(scratch, ignore_errors=True)


def stages(lake: Path) -> None:
    """Each stage patrol runs after ingest, timed alone (wall and this process's CPU)."""
    import resource
    from datetime import UTC, datetime

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    rows: list[tuple[str, float, float]] = []

    def timed_stage(name: str, fn):  # type: ignore[no-untyped-def]
        t, c = time.perf_counter(), cpu()
        out = fn()
        rows.append((name, time.perf_counter() - t, cpu() - c))
        return out

    load = os.getloadavg()
    from mamori.config import load_settings
    from mamori.correlate.incidents import correlate, host_aliases
    from mamori.detect.base import registered
    from mamori.detect.engine import lake_frames, run_detectors
    from mamori.patrol import _indicators, _traffic, build_report
    from mamori.report.patrol import write_html, write_json

    tables = sorted({t for d in registered().values() for t in d.reads} | {"conn"})
    try:  # as patrol opens it: the conn table held in memory (a tree before held_frames: not)
        from mamori.detect.engine import held_frames as opener
    except ImportError:
        opener = lake_frames  # type: ignore[assignment]
    frames = timed_stage("open the lake", lambda: opener(lake, tables))
    # Numba's first use in a process (LLVM's start, ~0.3 s) is paid by patrol's ingest, in the
    # same process, before detection: paid here apart, or scan.trw's kernel would carry it.
    from mamori.sensors.pcap.walk import _wire

    timed_stage("(Numba's start: in patrol, paid by ingest)", lambda: _wire(1, 2))
    run = timed_stage("detection (run_detectors)", lambda: run_detectors(frames))
    traffic = timed_stage("traffic charts (_traffic)", lambda: _traffic(frames["conn"]))
    settings = load_settings(None)
    incidents = timed_stage(
        "correlation",
        lambda: correlate(
            run.alerts, indicators=_indicators(None), aliases=host_aliases(settings.host_addresses)
        ),
    )
    report = build_report(
        [], frames["conn"], run.alerts, incidents, run.failed, datetime.now(UTC), lake=lake,
        traffic=traffic,
    )  # fmt: skip
    out = Path(tempfile.mkdtemp(prefix="mamori-bench-stages-"))
    timed_stage("report.json", lambda: write_json(report, out / "report.json"))
    timed_stage("report.html", lambda: write_html(report, out / "report.html"))
    shutil.rmtree(out, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {run.alerts.height} alerts, "
          f"{len(incidents)} incidents; peak RSS {peak:,.0f} MB\n")  # fmt: skip
    print("| stage | wall s | CPU s |")
    print("|---|---:|---:|")
    for name, wall, used in rows:
        print(f"| {name} | {wall:.2f} | {used:.2f} |")


if __name__ == "__main__":
    main()
