"""The REST API under load: requests/s for the incidents list and one incident's detail with
10,000 incidents stored, beside the same bytes served as static files by the same server stack
(uvicorn + Starlette ``StaticFiles``) and by Python's own ``http.server``, in the same run.

    python benchmarks/bench_web.py                       # 10,000 incidents, 10 s a measurement
    python benchmarks/bench_web.py --incidents 1000 --seconds 3

What is stored: one finished patrol run (``RUNS/<id>/status.json`` and ``report.json``) whose
report holds ``--incidents`` synthetic incidents of two alerts each (severities, techniques and
entities varied), the way a long patrol over a busy network leaves them; the API reads it through
the same runs registry the console uses. ``mamori``'s app (``create_app()``, SQLite state
database, an admin API token: every request authenticates) runs under uvicorn in its own process
on loopback; the peers serve the same two answers as files, each in its own process. The load comes from a second process, ``wrk`` (Debian's) with ``--connections``
keep-alive connections on one thread for ``--seconds``, the same for both servers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEVERITIES = ("critical", "high", "medium", "low")
TECHNIQUES = ("T1110", "T1071.001", "T1071.004", "T1046", "T1568.002", "T1498", "T1041")
DETECTORS = ("ssh-bruteforce", "port-scan", "dns-tunnel", "beacon", "amplification")


def synthetic_report(n: int, seed: int = 7) -> dict[str, object]:
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    incidents = []
    for i in range(n):
        src = f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        dst = f"10.0.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        first = t0 + timedelta(seconds=rng.randrange(30 * 86400))
        last = first + timedelta(seconds=rng.randrange(1, 7200))
        sev = rng.choice(SEVERITIES)
        techs = sorted(set(rng.sample(TECHNIQUES, 2)))
        alerts = [
            {
                "detector": rng.choice(DETECTORS),
                "techniques": techs[:1],
                "severity": sev,
                "confidence": round(rng.uniform(0.3, 0.99), 3),
                "summary": f"{src} -> {dst}: synthetic alert {k}",
                "src": src,
                "dst": dst,
                "domains": [],
                "first_seen": first.isoformat(),
                "last_seen": last.isoformat(),
                "evidence": {"uids": [f"C{rng.getrandbits(64):016x}" for _ in range(3)]},
            }
            for k in range(2)
        ]
        incidents.append(
            {
                "id": f"INC-{i:012x}",
                "title": f"Synthetic incident {i} by {src} against {dst}",
                "severity": sev,
                "confidence": round(rng.uniform(0.3, 0.99), 3),
                "techniques": techs,
                "entities": {"attackers": [src], "victims": [dst], "domains": []},
                "first_seen": first.isoformat(),
                "last_seen": last.isoformat(),
                "alerts": alerts,
            }
        )
    return {"schema": "mamori.report/1", "inputs": [], "incidents": incidents}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, headers: dict[str, str], timeout: float = 60.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            req = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read()  # type: ignore[no-any-return]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wrk(url: str, seconds: int, connections: int, headers: dict[str, str]) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (Debian package wrk: apt-get install wrk)")
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": float(p50.group(1)) * scale[p50.group(2)] if p50 else float("nan"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--incidents", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=4)
    args = ap.parse_args()

    from mamori.store import Store
    from mamori.web import auth

    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        runs = work / "runs"
        run = runs / "20261123T000000-bench0"
        run.mkdir(parents=True)
        report = synthetic_report(args.incidents)
        (run / "report.json").write_text(json.dumps(report), encoding="utf-8")
        status = {"state": "done", "started": datetime.now(UTC).isoformat(), "by": "bench"}
        (run / "status.json").write_text(json.dumps(status), encoding="utf-8")
        url = f"sqlite:///{work / 'state.db'}"
        store = Store(url)
        auth.add_user(store, "bench", "admin", "bench-password")
        token = auth.new_token(store, "bench", "benchmark")
        store.close()

        env = os.environ | {
            "MAMORI_STATE_URL": url,
            "MAMORI_RUNS_DIR": str(runs),
            "MAMORI_CAPTURES": str(work),
            "XDG_DATA_HOME": str(work / "xdg"),
        }
        port = free_port()
        serve = (
            "import uvicorn; from mamori.web.app import create_app; "
            f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_level='warning')"
        )
        procs.append(subprocess.Popen([sys.executable, "-c", serve], env=env))
        hdr = {"Authorization": f"Bearer {token}"}
        middle = report["incidents"][args.incidents // 2]["id"]  # type: ignore[index]
        api = {
            "list": f"http://127.0.0.1:{port}/api/incidents?limit=100",
            "detail": f"http://127.0.0.1:{port}/api/incidents/{middle}",
        }
        static = work / "static"
        static.mkdir()
        for name, u in api.items():
            (static / f"{name}.json").write_bytes(wait_http(u, hdr))
        peers: dict[str, dict[str, str]] = {}
        # Peer 1: the same server stack (uvicorn, Starlette) serving the answers as static files,
        # no authentication, no report: what mamori's own work per request costs beside it.
        p1 = free_port()
        static_app = (
            "import uvicorn; from starlette.applications import Starlette; "
            "from starlette.staticfiles import StaticFiles; app = Starlette(); "
            f"app.mount('/', StaticFiles(directory={str(static)!r})); "
            f"uvicorn.run(app, host='127.0.0.1', port={p1}, log_level='warning')"
        )
        procs.append(subprocess.Popen([sys.executable, "-c", static_app]))
        peers["uvicorn static"] = {n: f"http://127.0.0.1:{p1}/{n}.json" for n in api}
        # Peer 2: Python's own file server (HTTP/1.0, a connection per request: its HTTP/1.1
        # mode waits on delayed ACKs, 40 ms a request, which would flatter mamori).
        p2 = free_port()
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    "-b",
                    "127.0.0.1",
                    "-d",
                    str(static),
                    str(p2),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        peers["http.server"] = {n: f"http://127.0.0.1:{p2}/{n}.json" for n in api}
        for urls in peers.values():
            for u in urls.values():
                wait_http(u, {})

        rows = []
        for name in api:
            ours = wrk(api[name], args.seconds, args.connections, hdr)
            theirs = {
                p: wrk(urls[name], args.seconds, args.connections, {}) for p, urls in peers.items()
            }
            size = (static / f"{name}.json").stat().st_size
            rows.append((name, size, ours, theirs))
        load = os.getloadavg()
        print(
            f"\n{args.incidents:,} incidents stored; wrk -t1 -c{args.connections} "
            f"-d{args.seconds}s; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n"
        )
        print("| request | answer bytes | server | req/s | p50 | mamori / peer |")
        print("|---|---:|---|---:|---:|---:|")
        for name, size, ours, theirs in rows:
            label = (
                "GET /api/incidents (first 100)" if name == "list" else "GET /api/incidents/{id}"
            )
            print(
                f"| {label} | {size:,} | mamori | {ours['rps']:.1f} | {ours['p50_ms']:.1f} ms | |"
            )
            for peer, t in theirs.items():
                print(
                    f"| | | {peer} | {t['rps']:.1f} | {t['p50_ms']:.1f} ms "
                    f"| {ours['rps'] / t['rps']:.2f}× |"
                )
            bad = {"mamori": ours["non_2xx"]} | {p: t["non_2xx"] for p, t in theirs.items()}
            if any(bad.values()):
                print(f"  non-2xx answers: {bad}")
        results = HERE / "results"
        results.mkdir(exist_ok=True)
        out = results / f"web-{datetime.now(UTC):%Y-%m-%d}.json"
        out.write_text(
            json.dumps(
                {
                    "incidents": args.incidents,
                    "seconds": args.seconds,
                    "connections": args.connections,
                    "load": load,
                    "rows": [
                        {"request": n, "bytes": s, "mamori": o, "http.server": t}
                        for n, s, o, t in rows
                    ],
                },
                indent=1,
            ),
            encoding="utf-8",
        )
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
