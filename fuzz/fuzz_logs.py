"""Fuzz the log sensors: mutated logs (Zeek TSV and JSON, EVE, syslog, EVTX, Cowrie, JSON lines)
through ``ingest_log``, as ``mamori patrol`` reads them.

``ingest_log`` never lets a sensor take the patrol down: an exception a sensor raises becomes the
file's problem, "<sensor> sensor failed: ...", and the records after it are lost. Bad input must
instead be a record warned about and skipped, or a problem naming the record where reading
stopped (a cut or damaged gzip stream, a line past any log's length): so here a "sensor failed"
outcome is a bug, as is a problem or warning that spans lines or names no record. Seeds are the
shared logs the sensors recognise (their first 100 KB); mutations are ``fuzz_pcap``'s (bit flips,
interesting values, cuts, splices, gzip) plus whole-line ones (duplicate, drop, swap).

    python fuzz/fuzz_logs.py --seconds 30 [--seed N] [--data DIR] [--crash-dir DIR]

Exit status 1 on the first failure, with the offending input saved, so it is reproducible from
its seed.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import sys
import tempfile
import time
from pathlib import Path

from fuzz_pcap import default_data_dir, mutate

from mamori.sensors.inputs import kind_of
from mamori.sensors.logingest import LogStats, ingest_log
from mamori.sensors.registry import LogSensor, registered_sensors

SEED_BYTES = 100_000
SUFFIX = {"evtx": ".evtx", "eve": ".json", "cowrie": ".json", "jsonl": ".jsonl"}  # else .log
_NAMED = re.compile(r": record \d+: ")


class InvariantError(AssertionError):
    """A sensor failed on bad input, or told it in a way a user cannot act on."""


def load_seeds(data_dir: Path) -> dict[str, list[bytes]]:
    sensors = registered_sensors()
    seeds: dict[str, list[bytes]] = {}
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file() or path.suffix in (".pcap", ".pcapng", ".cap"):
            continue
        kind = kind_of(path)
        if kind in sensors:
            with path.open("rb") as f:
                seeds.setdefault(kind, []).append(f.read(SEED_BYTES))
    return seeds


def mutate_lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    if len(lines) < 2:
        return data
    for _ in range(rng.randint(1, 3)):
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        op = rng.randrange(3)
        if op == 0:
            lines.insert(i, lines[j])
        elif op == 1 and len(lines) > 1:
            del lines[i]
        else:
            lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def check_log(path: Path, sensor: LogSensor) -> LogStats:
    """One log through its sensor; raises :class:`InvariantError` on a bug."""
    stats = ingest_log(path, sensor, lambda table, batch: None)
    told = [stats.problem, stats.error, *stats.warnings]
    for text in (t for t in told if t):
        if "sensor failed" in text:
            raise InvariantError(text)
        if "\n" in text:
            raise InvariantError(f"a message spans lines: {text!r}")
    for text in (stats.problem, *stats.warnings):
        if text and not _NAMED.search(text) and "EOFError" not in text:
            raise InvariantError(f"a message names no record: {text!r}")
    return stats


def run(seconds: float, seed: int, data_dir: Path, crash_dir: Path) -> int:
    seeds = load_seeds(data_dir)
    if not seeds:
        print(f"no seed logs under {data_dir}", file=sys.stderr)
        return 2
    sensors = registered_sensors()
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    runs = rows = 0
    with tempfile.TemporaryDirectory(prefix="fuzz_logs_") as tmp:
        while time.monotonic() < deadline:
            kind = rng.choice(sorted(seeds))
            data = seeds[kind][rng.randrange(len(seeds[kind]))]
            data = mutate_lines(rng, data) if rng.random() < 0.3 else mutate(rng, [data])
            path = Path(tmp) / f"input{SUFFIX.get(kind, '.log')}"
            path.write_bytes(data)
            try:
                rows += sum(check_log(path, sensors[kind]).rows.values())
            except InvariantError as exc:
                crash_dir.mkdir(parents=True, exist_ok=True)
                out = crash_dir / f"crash-{kind}-{hashlib.sha1(data).hexdigest()[:16]}"
                out.write_bytes(data)
                print(f"FAIL after {runs} runs (seed {seed}), {kind}: {exc}", file=sys.stderr)
                print(f"input saved to {out}", file=sys.stderr)
                return 1
            runs += 1
    counts = ", ".join(f"{k} {len(v)}" for k, v in sorted(seeds.items()))
    print(f"ok: {runs} inputs, {rows} rows, seed {seed}, seed logs: {counts}")
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--crash-dir", type=Path, default=Path(tempfile.gettempdir()) / "fuzz_logs")
    args = ap.parse_args(argv[1:])
    return run(args.seconds, args.seed, args.data, args.crash_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
