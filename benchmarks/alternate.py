"""Time whole commands in alternating rounds: the A/B of one change on a noisy machine.

    python benchmarks/alternate.py 5 \\
        "base::PYTHONPATH=/path/to/parent/src python -m mamori.cli ingest W --lake /tmp/ab" \\
        "new::PYTHONPATH=src python -m mamori.cli ingest W --lake /tmp/ab" \\
        "minimal::python benchmarks/peers/minimal_pass.py W"

Each argument is ``NAME::SHELL COMMAND``. Every round runs each command once, in the order given,
so a slow phase of the machine hits all of them alike; ``/tmp/ab`` (the lake the examples write)
is removed before each run. Prints wall, user and system CPU and minor page faults of each run
(``wait4``'s rusage of the whole process tree), the medians, and the first command's wall over
each other's, per round and as the median of rounds: only that ratio means much here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time

SCRATCH = "/tmp/ab"


def run(cmd: str) -> tuple[float, float, float, int, int]:
    shutil.rmtree(SCRATCH, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["bash", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return wall, usage.ru_utime, usage.ru_stime, usage.ru_minflt, os.waitstatus_to_exitcode(status)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rounds", type=int)
    ap.add_argument("commands", nargs="+", help="NAME::SHELL COMMAND")
    args = ap.parse_args()
    specs = [c.split("::", 1) for c in args.commands]
    if any(len(s) != 2 for s in specs):
        ap.error("each command is NAME::SHELL COMMAND")
    runs: dict[str, list[tuple[float, float, float, int, int]]] = {n: [] for n, _ in specs}
    for r in range(args.rounds):
        for name, cmd in specs:
            got = run(cmd)
            runs[name].append(got)
            wall, user, sys_, faults, rc = got
            print(
                f"round {r} {name:10s} wall {wall:6.2f} user {user:6.2f} sys {sys_:5.2f}"
                f" minflt {faults:>8} exit {rc}",
                flush=True,
            )
    failed = [n for n, rs in runs.items() if any(x[4] for x in rs)]
    for name, rs in runs.items():
        med = [statistics.median(x[k] for x in rs) for k in range(4)]
        print(
            f"{name:10s} median wall {med[0]:.2f} user {med[1]:.2f} sys {med[2]:.2f}"
            f" minflt {med[3]:.0f}"
        )
    first, *others = list(runs)
    for other in others:
        ratios = [a[0] / b[0] for a, b in zip(runs[first], runs[other], strict=True)]
        each = " ".join(f"{x:.2f}" for x in ratios)
        print(f"{first}/{other} wall per round: {each}; median {statistics.median(ratios):.3f}")
    if failed:
        print("FAILED (non-zero exit):", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
