"""Fuzz the log sensors: mutated logs (Zeek TSV and JSON, EVE, syslog, EVTX, Cowrie, JSON lines)
through ``ingest_log``, as ``mamori patrol`` reads them.

``ingest_log`` never lets a sensor take the patrol down: an exception a sensor raises becomes the
file's problem, "<sensor> sensor failed: ...", and the records after it are lost. Bad input must
instead be a record warned about and skipped, or a problem naming the record where reading
stopped (a cut or damaged gzip stream, a line past any log's length): so here a "sensor failed"
outcome is a bug, as is a problem or warning that spans lines or names no record. Seeds are the
shared logs the sensors recognise (their first 100 KB) and a built-in EVE file (the shared data
has Suricata's rules and captures, not its output); mutations are ``fuzz_pcap``'s (bit flips,
interesting values, cuts, splices, gzip), whole-line ones (duplicate, drop, swap) and, for JSON
lines, a value anywhere in an object replaced by another type or an extreme number.

    python fuzz/fuzz_logs.py --seconds 30 [--seed N] [--data DIR] [--crash-dir DIR]

Exit status 1 on the first failure, with the offending input saved, so it is reproducible from
its seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
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


# Suricata's EVE shapes: alert, flow, netflow, dns (v1 and v3), http, tls, anomaly.
_EVE = [
    {"timestamp": "2024-01-01T00:00:00.000000+0000", "flow_id": 1, "event_type": "alert",
     "src_ip": "10.0.0.1", "src_port": 4444, "dest_ip": "10.0.0.2", "dest_port": 80,
     "proto": "TCP", "alert": {"action": "allowed", "gid": 1, "signature_id": 2019401, "rev": 3,
     "signature": "ET POLICY test", "category": "Misc activity", "severity": 3},
     "app_proto": "http"},
    {"timestamp": "2024-01-01T00:00:01.000000+0000", "flow_id": 1, "event_type": "flow",
     "src_ip": "10.0.0.1", "src_port": 4444, "dest_ip": "10.0.0.2", "dest_port": 80,
     "proto": "TCP", "flow": {"pkts_toserver": 4, "pkts_toclient": 3, "bytes_toserver": 300,
     "bytes_toclient": 900, "start": "2024-01-01T00:00:00.000000+0000",
     "end": "2024-01-01T00:00:01.000000+0000", "age": 1, "state": "closed", "reason": "timeout"}},
    {"timestamp": "2024-01-01T00:00:02.000000+0000", "flow_id": 2, "event_type": "netflow",
     "src_ip": "10.0.0.3", "src_port": 53, "dest_ip": "10.0.0.1", "dest_port": 5353,
     "proto": "UDP", "netflow": {"pkts": 1, "bytes": 90, "start": "2024-01-01T00:00:02+0000",
     "end": "2024-01-01T00:00:02+0000", "age": 0}},
    {"timestamp": "2024-01-01T00:00:03.000000+0000", "flow_id": 3, "event_type": "dns",
     "src_ip": "10.0.0.1", "src_port": 5353, "dest_ip": "10.0.0.3", "dest_port": 53,
     "proto": "UDP", "dns": {"type": "answer", "id": 7, "rcode": "NOERROR", "rrname": "a.test",
     "rrtype": "A", "ttl": 60, "rdata": "192.0.2.1"}},
    {"timestamp": "2024-01-01T00:00:04.000000+0000", "flow_id": 4, "event_type": "dns",
     "src_ip": "10.0.0.1", "src_port": 5000, "dest_ip": "10.0.0.3", "dest_port": 53,
     "proto": "UDP", "dns": {"version": 3, "type": "response", "id": 8, "flags": "8580",
     "rcode": "NOERROR", "queries": [{"rrname": "b.test", "rrtype": "AAAA"}],
     "answers": [{"rrname": "b.test", "rrtype": "AAAA", "ttl": 300, "rdata": "2001:db8::1"}]}},
    {"timestamp": "2024-01-01T00:00:05.000000+0000", "flow_id": 5, "event_type": "http",
     "src_ip": "10.0.0.1", "src_port": 4445, "dest_ip": "10.0.0.2", "dest_port": 80,
     "proto": "TCP", "tx_id": 0, "http": {"hostname": "c.test", "url": "/x?y=1",
     "http_user_agent": "curl/8", "http_method": "GET", "protocol": "HTTP/1.1", "status": 200,
     "length": 12}},
    {"timestamp": "2024-01-01T00:00:06.000000+0000", "flow_id": 6, "event_type": "tls",
     "src_ip": "10.0.0.1", "src_port": 4446, "dest_ip": "10.0.0.2", "dest_port": 443,
     "proto": "TCP", "tls": {"sni": "d.test", "version": "TLS 1.3",
     "ja3": {"hash": "e7d705a3286e19ea42f587b344ee6865"}}},
    {"timestamp": "2024-01-01T00:00:07.000000+0000", "event_type": "anomaly",
     "src_ip": "10.0.0.1", "dest_ip": "10.0.0.2", "proto": "TCP",
     "anomaly": {"type": "decode", "event": "ipv4.trunc_pkt"}},
]  # fmt: skip
EVE_SEED = "\n".join(json.dumps(e) for e in _EVE * 3).encode() + b"\n"
_ODD = [None, True, -1, 0, 2**31, 2**63, 2**64 + 5, -(2**63) - 1, 1e308, -1e-300, "", "-",
        "x" * 300, "1e999", [], {}, [1, "a"], {"k": None}, "2024-13-45T99:99:99Z", "\u0000"]  # fmt: skip


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
    if "eve" in sensors:
        seeds.setdefault("eve", []).append(EVE_SEED)
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


def mutate_json(rng: random.Random, data: bytes) -> bytes:
    """One JSON line's value somewhere (at any depth) replaced by an odd one."""
    lines = data.split(b"\n")
    i = rng.randrange(len(lines))
    try:
        obj = json.loads(lines[i])
    except ValueError:
        return data
    node, path = obj, []
    while isinstance(node, dict | list) and node and (not path or rng.random() < 0.6):
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    if not path:
        return data
    parent, key = path[-1]
    parent[key] = rng.choice(_ODD)
    lines[i] = json.dumps(obj).encode()
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
            pick = rng.random()
            if pick < 0.3 and data[:1] == b"{":
                data = mutate_json(rng, data)
            elif pick < 0.5:
                data = mutate_lines(rng, data)
            else:
                data = mutate(rng, [data])
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
