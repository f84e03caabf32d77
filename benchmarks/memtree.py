"""Peak memory of a command's whole process tree, sampled from /proc (Linux).

    python benchmarks/memtree.py [--interval 0.1] [--pss] [--json FILE] -- CMD ARG...

Runs CMD, and every ``--interval`` seconds sums the resident set size (``VmRSS``) of CMD and all
its descendants; prints the wall time, the peak of that sum, each process's own peak and, at the
tree's peak, how it splits into anonymous memory (``RssAnon``: heaps, arrays) and file-backed
pages (``RssFile``: shared libraries, cached Numba kernels, mapped captures). Summed RSS counts a
page shared by two processes twice, which is what a "peak RSS of the tree" bar means; ``--pss``
adds the proportional set size (``/proc/PID/smaps_rollup``), which splits shared pages fairly, at
a higher sampling cost. Why not psutil or ``/usr/bin/time``: time reports the largest single
process only, and a sampler that only reads /proc adds nothing to the tree it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from every /proc/PID/stat (field 4 is the parent)."""
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _tree(root: int) -> list[int]:
    kids = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, RssShmem of one process in bytes (empty once it is gone)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmSize"):
                out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        return {}
    return out


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Peak:
    wall_s: float = 0.0
    rc: int = 0
    tree_mb: float = 0.0
    tree_anon_mb: float = 0.0
    tree_file_mb: float = 0.0
    tree_pss_mb: float = 0.0
    at_s: float = 0.0
    processes: dict[int, float] = field(default_factory=dict)  # pid -> its own peak MB
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (s, tree MB) every 1 s


def measure(cmd: list[str], interval: float = 0.1, pss: bool = False) -> Peak:
    peak = Peak()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    last_mark = -1.0
    while True:
        done = proc.poll() is not None
        now = time.perf_counter() - start
        tree = _tree(proc.pid) if not done else []
        rss = anon = file = 0
        for pid in tree:
            st = _status(pid)
            rss += st.get("VmRSS", 0)
            anon += st.get("RssAnon", 0)
            file += st.get("RssFile", 0) + st.get("RssShmem", 0)
            mb = st.get("VmRSS", 0) / 2**20
            if mb > peak.processes.get(pid, 0.0):
                peak.processes[pid] = mb
        if rss / 2**20 > peak.tree_mb:
            peak.tree_mb = rss / 2**20
            peak.tree_anon_mb = anon / 2**20
            peak.tree_file_mb = file / 2**20
            peak.at_s = now
        if pss and tree:
            peak.tree_pss_mb = max(peak.tree_pss_mb, sum(_pss(p) for p in tree) / 2**20)
        if now - last_mark >= 1.0 and tree:
            peak.timeline.append((round(now, 1), round(rss / 2**20)))
            last_mark = now
        if done:
            break
        time.sleep(interval)
    peak.wall_s = time.perf_counter() - start
    peak.rc = proc.returncode
    return peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--pss", action="store_true", help="also sample the tree's PSS")
    ap.add_argument("--json", type=Path, help="write the full result (timeline too) here")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given (put it after --)")
    peak = measure(cmd, args.interval, args.pss)
    biggest = sorted(peak.processes.values(), reverse=True)
    line = (
        f"wall {peak.wall_s:.1f} s rc {peak.rc} tree peak {peak.tree_mb:,.0f} MB "
        f"(anon {peak.tree_anon_mb:,.0f}, file {peak.tree_file_mb:,.0f}) at {peak.at_s:.1f} s; "
        f"per process {', '.join(f'{m:,.0f}' for m in biggest[:4])} MB"
    )
    if args.pss:
        line += f"; tree PSS peak {peak.tree_pss_mb:,.0f} MB"
    print(line, file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(asdict(peak), indent=1))
    return peak.rc


if __name__ == "__main__":
    raise SystemExit(main())
