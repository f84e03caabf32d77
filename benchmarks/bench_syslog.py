"""Syslog sensor throughput: mamori's vectorised reader beside the common per-line Python parser.

The workload is loghub's labelled OpenSSH log (2,000 lines of a real Internet-facing sshd) repeated
with each copy's addresses shifted, so every line is real-shaped and the auth rows are many (57 %
of the lines are login events). The peer is what log tools written in Python do (fail2ban, most
SIEM shippers' Python parsers): a compiled ``re`` header match per line, the tag split, then the
sshd patterns tried in turn, one dict per record; it does less than mamori (no Arrow output, no
year turn pre-pass, no PAM/sudo/ftp rules, no uids), which favours it.

    python benchmarks/bench_syslog.py [--copies 500] [--repeat 3]

Both run in the same process, alternately, on the same file (page cache warm); the result is the
best of ``--repeat`` runs each, as lines/s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

from mamori.sensors.logingest import ingest_log
from mamori.sensors.registry import registered_sensors

ROOT = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MAMORI_DATA", ROOT.parent.parent / "shared" / "data"))
SOURCE = DATA / "logs/loghub/OpenSSH/OpenSSH_2k.log"

HEADER = re.compile(
    r"^(?:<(\d{1,3})>)?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(\d{1,2}) "
    r"(\d{2}:\d{2}:\d{2}) (\S+) (.*)$"
)
TAG = re.compile(r"^([^\s\[\]:]+)(?:\[(\d+)\])?: ?(.*)$")
SSHD = [
    (re.compile(r"^Failed (\S+) for (invalid user )?(.*?) from (\S+) port (\d+)"), "failure"),
    (re.compile(r"^Accepted (\S+) for ()(.*?) from (\S+) port (\d+)"), "success"),
    (re.compile(r"^[Ii]nvalid user ()()(.*?) from (\S+?)()\s*$"), "failure"),
]
MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"), 1)}  # fmt: skip


def build(copies: int, out: Path) -> int:
    """The OpenSSH log ``copies`` times, each copy's IPv4 first octets shifted."""
    lines = SOURCE.read_text().splitlines()
    ip = re.compile(r"\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b")
    with out.open("w") as f:
        for c in range(copies):

            def moved(m: re.Match[str], shift: int = c % 200) -> str:
                return f"{(int(m[1]) + shift) % 256}.{m[2]}.{m[3]}.{m[4]}"

            for line in lines:
                f.write(ip.sub(moved, line) + "\n")
    return copies * len(lines)


def peer(path: Path) -> tuple[int, int]:
    """Per-line Python: header, tag, sshd patterns; one dict per syslog record and auth event."""
    records: list[dict[str, object]] = []
    auth: list[dict[str, object]] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = HEADER.match(line.rstrip("\n"))
            if m is None:
                continue
            _pri, mon, day, clock, host, rest = m.groups()
            t = TAG.match(rest)
            app, pid, msg = t.groups() if t else (None, None, rest)
            h, mi, s = clock.split(":")
            ts = (MONTHS[mon], int(day), int(h), int(mi), int(s))
            records.append(
                {"record": n, "ts": ts, "host": host, "app": app, "pid": pid, "message": msg}
            )
            if app == "sshd":
                for rx, outcome in SSHD:
                    a = rx.match(msg)
                    if a:
                        method, inv, user, src, port = a.groups()
                        auth.append({"record": n, "ts": ts, "outcome": outcome, "user": user,
                                     "src_ip": src, "port": port, "method": method,
                                     "invalid": bool(inv)})  # fmt: skip
                        break
    return len(records), len(auth)


def mamori(path: Path) -> tuple[int, int]:
    rows: dict[str, int] = {}

    def sink(table: str, batch: object) -> None:
        rows[table] = rows.get(table, 0) + batch.num_rows  # type: ignore[attr-defined]

    stats = ingest_log(path, registered_sensors()["syslog"], sink, year=2025)
    assert stats.error is None and stats.problem is None, stats
    return rows.get("syslog", 0), rows.get("auth", 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = ROOT / "work"
    work.mkdir(exist_ok=True)
    path = work / f"openssh-x{args.copies}.log"
    lines = build(args.copies, path) if not path.exists() else args.copies * 2000
    size = path.stat().st_size
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    counts: dict[str, tuple[int, int]] = {}
    mamori(path)  # imports every sensor module once (not the reader's cost)
    for _ in range(args.repeat):
        for name, fn in (("mamori", mamori), ("python re", peer)):
            t, c = time.perf_counter(), time.process_time()
            counts[name] = fn(path)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
            cpu[name] = min(cpu.get(name, float("inf")), time.process_time() - c)
    print(f"{lines:,} lines, {size / 1e6:.0f} MB, load average {os.getloadavg()[0]:.2f}")
    for name, secs in best.items():
        rec, auth = counts[name]
        print(f"{name:10s} {secs:7.2f} s wall {cpu[name]:7.2f} s CPU  {lines / secs:10,.0f} "
              f"lines/s  {rec:,} records, {auth:,} auth rows")  # fmt: skip
    print(
        f"ratio mamori / python re, lines/s: {best['python re'] / best['mamori']:.2f}x wall, "
        f"{cpu['python re'] / cpu['mamori']:.2f}x CPU"
    )


if __name__ == "__main__":
    main()
