"""TAXII 2.1 GET objects from a 1,000,000-object collection, against the bar of PERFORMANCE.md:
``limit=100`` pages (the first, and deep ones through ``next``) and ``added_after`` queries at a
median under 10 ms, at least as many requests/s as medallion's discovery endpoint in the same run,
and the official ``taxii2-client`` paging the whole collection.

    python benchmarks/bench_taxii.py                      # 1M objects (~10 min on 2 busy cores)
    python benchmarks/bench_taxii.py --objects 100000 --seconds 4   # quicker

The collection is realistic and seeded: indicators (IPv4, domain, URL and file-hash patterns with
the names, descriptions and kill-chain phases of the OASIS ``apt1``/``poisonivy`` examples), plus
malware, attack-patterns and ``indicates`` relationships between them, under a TLP 2.0 mix
(GREEN 55 %, CLEAR 10 %, AMBER 15 %, AMBER+STRICT 5 %, RED 10 %, AMBER named to the reading
partner two times in three). It is loaded through :func:`mamori.share.taxii.storage.add`, the bulk
path ``publish`` and POST use after validation (stix2-validator, ~10 ms an object, is not what is
measured). The reading partner receives CLEAR/GREEN and the AMBER it is named on, so every request
runs the TLP filter and ~78 % of the objects are its to read.

The load comes from client processes on loopback (``--client``: stdlib ``http.client``,
keep-alive, one process per connection, ``--connections`` of them, starting together; each
request timed alone), bounded by ``--seconds`` and ``--max-requests`` per scenario; the walk
follows ``next`` read from each page's envelope head (:func:`envelope_head`). The same clients
measure medallion 3.0's discovery endpoint (the OASIS reference server on its memory backend,
started on loopback as the tests do) in the same run. Results are printed as Markdown and
written to ``benchmarks/results/taxii-<date>.json``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

NS = uuid.UUID("5b7c1c1e-7d36-4b8a-9d59-1f0e6c5d7a10")
TAXII = "application/taxii+json;version=2.1"
READER = "bench"
MEDALLION_MAX = 800
# (label, share of objects, partners named on the object)
TLP_MIX = (
    ("green", 0.55),
    ("clear", 0.10),
    ("amber", 0.15),
    ("amber+strict", 0.05),
    ("red", 0.10),
    ("unmarked", 0.05),
)


# --- the collection -----------------------------------------------------------------------------


def make_objects(
    n: int, data_dir: Path, seed: int = 7
) -> tuple[list[dict[str, Any]], list[str], list[tuple[str, ...]]]:
    """``n`` STIX 2.1 objects with each one's TLP label and AMBER audience (seeded)."""
    from mamori.share.tlp import Tlp

    examples = data_dir / "threat-intel/stix2.1-examples/examples/threat-reports"
    src = [
        o
        for f in ("apt1.json", "poisonivy.json")
        for o in json.loads((examples / f).read_text())["objects"]
    ]
    ind_t = [o for o in src if o["type"] == "indicator"]
    mal_t = [o for o in src if o["type"] == "malware"]
    ap_t = [o for o in src if o["type"] == "attack-pattern"]
    marking = {
        "clear": Tlp.CLEAR.marking_id,
        "green": Tlp.GREEN.marking_id,
        "amber": Tlp.AMBER.marking_id,
        "amber+strict": Tlp.AMBER_STRICT.marking_id,
        "red": Tlp.RED.marking_id,
    }
    labels = [lab for lab, _ in TLP_MIX]
    weights = [w for _, w in TLP_MIX]
    rnd = random.Random(seed)
    objs: list[dict[str, Any]] = []
    tlps: list[str] = []
    aud: list[tuple[str, ...]] = []
    malware_ids: list[str] = []
    indicator_ids: list[str] = []
    base = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    for i in range(n):
        stamp = (
            datetime.fromtimestamp(base + i * 13.7, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            + "Z"
        )
        oid_tail = uuid.uuid5(NS, str(i))
        r = rnd.random()
        if r < 0.02 or not malware_ids:
            t = mal_t[i % len(mal_t)]
            o = {**t, "id": f"malware--{oid_tail}", "name": f"{t['name']} {i}"}
            malware_ids.append(o["id"])
        elif r < 0.03:
            t = ap_t[i % len(ap_t)]
            o = {**t, "id": f"attack-pattern--{oid_tail}"}
        elif r < 0.05 and indicator_ids:
            o = {
                "type": "relationship",
                "spec_version": "2.1",
                "id": f"relationship--{oid_tail}",
                "relationship_type": "indicates",
                "source_ref": rnd.choice(indicator_ids[-5000:]),
                "target_ref": rnd.choice(malware_ids[-200:]),
            }
        else:
            t = ind_t[i % len(ind_t)]
            k = rnd.randrange(4)
            if k == 0:
                v = f"[ipv4-addr:value = '{rnd.randrange(1, 224)}.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(256)}']"
            elif k == 1:
                v = f"[domain-name:value = 'c2-{rnd.getrandbits(40):010x}.example.net']"
            elif k == 2:
                v = f"[url:value = 'http://{rnd.getrandbits(32):08x}.example.org/gate.php?id={i}']"
            else:
                v = f"[file:hashes.'SHA-256' = '{rnd.getrandbits(256):064x}']"
            o = {**t, "id": f"indicator--{oid_tail}", "pattern": v, "pattern_type": "stix"}
            indicator_ids.append(o["id"])
        o["created"] = o["modified"] = stamp
        if o["type"] == "indicator":
            o["valid_from"] = stamp
        label = rnd.choices(labels, weights)[0]
        named: tuple[str, ...] = ()
        if label in ("amber", "amber+strict"):
            named = (READER,) if rnd.random() < 2 / 3 else ("other-cert",)
        if label != "unmarked":
            o["object_marking_refs"] = [marking[label]]
        objs.append(o)
        tlps.append(label)
        aud.append(named)
    return objs, tlps, aud


def readable_ids(
    objs: list[dict[str, Any]], tlps: list[str], aud: list[tuple[str, ...]]
) -> set[str]:
    """What the reading partner may get: its own TLPs, and everything a relationship reaches."""
    own = {
        o["id"]
        for o, lab, a in zip(objs, tlps, aud, strict=True)
        if lab in ("clear", "green") or (lab in ("amber", "amber+strict") and READER in a)
    }
    return {
        o["id"]
        for o in objs
        if o["id"] in own
        and (o["type"] != "relationship" or (o["source_ref"] in own and o["target_ref"] in own))
    }


def load(url: str, objs, tlps, aud, batch: int = 50_000) -> tuple[str, float]:
    """Register the reading partner and put the objects into its collection; seconds taken."""
    from mamori.share import partners
    from mamori.share.taxii import ingest, storage
    from mamori.store import Store

    store = Store(url)
    secret = partners.add(store, READER, ["bench"], can_read=True)
    t0 = time.perf_counter()
    with store.begin() as conn:
        cid = partners.ensure_collection(conn, "bench")
    for i in range(0, len(objs), batch):
        with store.begin() as conn:
            if conn.dialect.name == "sqlite":  # 256 MB of page cache: the id indexes grow randomly
                conn.exec_driver_sql("PRAGMA cache_size=-262144")
            items = ingest.items_for(conn, cid, objs[i : i + batch], "local")
            for it, a in zip(items, aud[i : i + batch], strict=True):
                it.audience = a
            storage.add(conn, cid, items)
    took = time.perf_counter() - t0
    store.close()
    return secret, took


# --- servers ------------------------------------------------------------------------------------


class MamoriServer:
    """``mamori serve``'s app under uvicorn, in its own process (like medallion); with
    ``workers`` > 1 as ``mamori serve --workers N`` runs it (each worker builds the app from
    ``MAMORI_STATE_URL``). No access log either way."""

    def __init__(self, url: str, workers: int = 1) -> None:
        from support.taxii_peers import free_port

        self.port = free_port()
        if workers == 1:
            code = (
                "import uvicorn; from mamori.store import Store;"
                " from mamori.web.app import create_app;"
                f"uvicorn.run(create_app(Store({url!r})), host='127.0.0.1', port={self.port},"
                " log_level='warning', access_log=False)"
            )
        else:
            code = (
                "from mamori.web.cli import serve_workers;"
                f" serve_workers('127.0.0.1', {self.port}, {workers},"
                " log_level='warning', access_log=False)"
            )
        env = {**os.environ, "MAMORI_STATE_URL": url}
        self.proc = subprocess.Popen([sys.executable, "-c", code], env=env)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait(self, auth: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if get(self.base, "/taxii2/", auth)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("mamori did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(base: str, path: str, auth: str) -> tuple[int, bytes]:
    u = urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    try:
        c.request("GET", path, headers={"Accept": TAXII, "Authorization": auth})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# --- the load client (one process per connection) ----------------------------------------------


def client_main() -> None:
    """``--client``: one connection's share of a scenario (JSON on stdin), its raw result
    (JSON on stdout)."""
    spec = json.load(sys.stdin)
    json.dump(run_connection(spec["base"], spec["auth"], spec["scenario"], spec["k"]), sys.stdout)


def run_connection(base: str, auth: str, s: dict[str, Any], k: int) -> dict[str, Any]:
    """Connection ``k`` of ``s["connections"]``: ``cycle`` takes every connections-th path in
    turn from the k-th; ``walk`` starts at path k and follows ``next`` (read from each page's
    envelope: :func:`envelope_head`). Starts at the wall-clock time ``s["go_at"]`` with the
    other connections, warm-up requests first (not counted), then until ``seconds`` after the
    first counted request or ``max`` requests (this connection's share)."""
    u = urlsplit(base)
    paths: list[str] = s["paths"]
    stride = s["connections"]
    cap = -(-s["max"] // stride)
    lat: list[float] = []
    errors: list[str] = []
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    headers = {"Accept": TAXII, "Authorization": auth}
    i = k
    path = paths[k % len(paths)]
    warm = s.get("warmup", 5)
    first = last = stop_at = 0.0
    time.sleep(max(0.0, s["go_at"] - time.time()))
    while True:
        if s["mode"] == "cycle":
            path = paths[i % len(paths)]
            i += stride
        t0 = time.monotonic()
        try:
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException) as exc:  # counted, then a new connection
            conn.close()
            errors.append(f"{type(exc).__name__}: {exc}")
            if len(errors) > 50 or (stop_at and time.monotonic() > stop_at):
                break
            continue
        dt = time.monotonic() - t0
        if r.status != 200:
            errors.append(f"{r.status} {path}: {body[:200]!r}")
            break
        if s["mode"] == "walk":
            page = envelope_head(body)
            if page.get("more"):
                sep = "&" if "?" in paths[0] else "?"
                base_path = path.split("&next=")[0].split("?next=")[0]
                path = f"{base_path}{sep}{urlencode({'next': page['next']})}"
            else:
                path = paths[k % len(paths)]
        if warm > 0:
            warm -= 1
            continue
        if not stop_at:
            stop_at = t0 + s["seconds"]
            first = t0
        if len(lat) >= cap or t0 > stop_at:
            break
        lat.append(dt)
        last = t0 + dt
    conn.close()
    return {
        "lat": lat,
        "first": first,
        "last": last,
        "warmup": s.get("warmup", 5) - warm,
        "errors": errors,
    }


def run_scenario(base: str, auth: str, s: dict[str, Any]) -> dict[str, Any]:
    """Run ``s`` from ``s["connections"]`` client processes at once (one connection each: a
    Python client's threads share one interpreter lock, and parsing 64 kB pages in the walk
    made the client, not the server, the bottleneck) and merge what they measured."""
    go_at = time.time() + 0.5
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--client"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(s["connections"])
    ]
    for k, proc in enumerate(procs):
        spec = {"base": base, "auth": auth, "scenario": {**s, "go_at": go_at}, "k": k}
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
    parts = []
    for proc in procs:
        assert proc.stdout is not None
        parts.append(json.loads(proc.stdout.read()))
        if proc.wait(timeout=3600) != 0:
            raise RuntimeError("a benchmark client failed")
    lat = sorted(x for p in parts for x in p["lat"])
    errors = [e for p in parts for e in p["errors"]]
    timed = [p for p in parts if p["lat"]]
    wall = max(p["last"] for p in timed) - min(p["first"] for p in timed) if timed else 0.0
    res: dict[str, Any] = {
        "name": s["name"],
        "requests": len(lat),
        "warmup": sum(p["warmup"] for p in parts),
        "errors": len(errors),
        "error_samples": errors[:3],
    }
    if lat and wall > 0:
        res |= {
            "median_ms": round(statistics.median(lat) * 1000, 2),
            "p95_ms": round(lat[int(0.95 * (len(lat) - 1))] * 1000, 2),
            "rps": round(len(lat) / wall, 1),
        }
    return res


def envelope_head(body: bytes) -> dict[str, Any]:
    """A TAXII envelope's ``more`` and ``next``, without decoding its objects when they come
    after them (as mamori writes them): what a streaming client reads to follow ``next``.
    Decoding every 64 kB page made the walk's client, not the server, the bottleneck (see
    the README). Any other layout is decoded whole."""
    import orjson

    cut = body.find(b'"objects":', 0, 512)
    if cut > 1:
        head = orjson.loads(body[:cut].rstrip().rstrip(b",") + b"}")
        if "more" in head:
            return head  # type: ignore[no-any-return]
    return orjson.loads(body)  # type: ignore[no-any-return]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants so far (Linux
    ``/proc``): a server with workers is the supervisor and its worker processes."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(d.name)] = int(fields[1])
            ticks[int(d.name)] = int(fields[11]) + int(fields[12])
    total = 0
    for p, t in ticks.items():
        q = p
        while q and q != pid:
            q = parent.get(q, 0)
        if q == pid:
            total += t
    return total / os.sysconf("SC_CLK_TCK")


def child_pid(word: str) -> int:
    """The pid of this process's child whose command line holds ``word`` (medallion's server)."""
    me = str(os.getpid())
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = (d / "stat").read_text().rsplit(")", 1)[1].split()[1]
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if ppid == me and word.encode() in cmd:
                return int(d.name)
    raise RuntimeError(f"no child process running {word}")


def warm(path: Path) -> float:
    """Read the database file through the OS page cache; seconds taken.

    Why: the server reads pages with the file in the page cache, as one that has been serving
    has it (medallion holds its collection in memory), but on this shared machine other jobs
    evicted part of the 1.28 GB file between scenarios (``fincore``: 1.1 of 1.2 GB resident), and
    a walk's fresh pages then waited on the disk (3.5-4.4 ms a page against 0.5 ms of CPU)."""
    t0 = time.perf_counter()
    buf = bytearray(4 << 20)
    with path.open("rb", buffering=0) as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_WILLNEED)
        while f.readinto(buf):
            pass
    return time.perf_counter() - t0


def drive(
    base: str,
    auth: str,
    scenarios: list[dict[str, Any]],
    pid: int,
    db: Path | None = None,
) -> list[dict[str, Any]]:
    """Run each scenario from client processes and return what they measured, with the
    server's CPU time per request (steadier than wall time on a shared machine); ``db``: the
    database file to read into the page cache before each scenario (:func:`warm`)."""
    out = []
    for s in scenarios:
        warmed = warm(db) if db is not None else None
        cpu0 = cpu_s(pid)
        r = run_scenario(base, auth, s)
        sent = r["requests"] + r["warmup"]
        r["server_cpu_ms"] = round((cpu_s(pid) - cpu0) * 1000 / sent, 3) if sent else None
        r["load"] = loadavg()
        if warmed is not None:
            r["page_cache_warm_s"] = round(warmed, 2)
        out.append(r)
    return out


# --- the run ------------------------------------------------------------------------------------


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=8.0, help="per scenario")
    ap.add_argument("--max-requests", type=int, default=5000, help="per scenario")
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument(
        "--workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 2],
        help="server processes, one run of the scenarios each (mamori serve --workers N)",
    )
    ap.add_argument("--points", type=int, default=200, help="added_after / deep-page start points")
    ap.add_argument("--per-request", type=int, default=1000, help="taxii2-client page size")
    ap.add_argument("--db", type=Path, help="keep the state database here (reused if it exists)")
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MAMORI_DATA", ROOT.parent / "shared/data")),
    )
    args = ap.parse_args()
    if args.client:
        client_main()
        return

    import sqlalchemy as sa

    from mamori.share import tables as t
    from support.taxii_peers import MEDALLION_USER, medallion_server

    res: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        **{k: str(v) for k, v in vars(args).items() if k != "client"},
        "load_before": loadavg(),
    }
    t0 = time.perf_counter()
    objs, tlps, aud = make_objects(args.objects, args.data)
    res["generate_s"] = round(time.perf_counter() - t0, 1)
    want = readable_ids(objs, tlps, aud)
    res["readable"] = len(want)
    with tempfile.TemporaryDirectory(prefix="bench-taxii-") as tmp:
        work = Path(tmp)
        db = args.db or work / "state.db"
        url = f"sqlite:///{db}"
        fresh = not db.exists()
        if fresh:
            secret, res["load_s"] = load(url, objs, tlps, aud)
            (db.parent / (db.name + ".secret")).write_text(secret)
        else:
            secret = (db.parent / (db.name + ".secret")).read_text()
        res["load_objects_per_s"] = round(len(objs) / res["load_s"]) if fresh else None
        print(
            f"loaded {len(objs):,} objects {res.get('load_s')} s; load avg {loadavg()}", flush=True
        )
        del objs, tlps, aud

        # Starting points for added_after and deep pages: date_added of rows spread over the whole
        # collection (including rows the reader may not see: a partner's last pull can be any).
        eng = sa.create_engine(url)
        with eng.connect() as c:
            lo, hi = c.execute(
                sa.select(
                    sa.func.min(t.objects.c.date_added_us), sa.func.max(t.objects.c.date_added_us)
                )
            ).one()
        eng.dispose()
        rnd = random.Random(11)
        from mamori.share.taxii.timestamps import format_us

        points = [format_us(rnd.randint(lo, hi)) for _ in range(args.points)]
        deep = [format_us(lo + (hi - lo) * f // 100) for f in (10, 25, 50, 75, 90, 99)]

        auth = basic(READER, secret)
        coll = "/taxii2/mamori/collections/bench/objects/"
        common = {
            "connections": args.connections,
            "seconds": args.seconds,
            "max": args.max_requests,
        }
        # medallion's discovery endpoint, same client, same run: measured before, between and
        # after mamori's scenarios (the machine's load moves; the bar is the highest), each on a
        # fresh medallion and at most MEDALLION_MAX requests: it answers every request with
        # `Connection: close`, and on this machine stopped answering after ~960 of them
        # (timeouts; see the README).
        disc = {
            **common,
            "name": "medallion discovery",
            "mode": "cycle",
            "paths": ["/taxii2/"],
            "max": min(args.max_requests, MEDALLION_MAX),
        }

        def medallion(when: str) -> dict[str, Any]:
            with medallion_server(work / "medallion", []) as root:
                mbase = root.split("/api1/")[0]
                mauth = basic(*MEDALLION_USER)
                r = drive(mbase, mauth, [{**disc, "name": when}], child_pid("medallion"))[0]
                print("medallion", json.dumps(r), flush=True)
                return r

        res["medallion"] = [medallion("before")]
        res["mamori"] = []
        for n, workers in enumerate(args.workers):
            server = MamoriServer(url, workers)
            try:
                server.wait(auth)
                # deep `next` tokens: the `next` of an added_after page at each depth
                tokens = []
                for p in deep:
                    _, body = get(
                        server.base, coll + "?" + urlencode({"limit": 100, "added_after": p}), auth
                    )
                    if nxt := json.loads(body).get("next"):  # none near a small collection's end
                        tokens.append(nxt)
                nexts = [coll + "?" + urlencode({"limit": 100, "next": tk}) for tk in tokens]
                scen = [
                    {
                        "name": "first page (limit=100)",
                        "mode": "cycle",
                        "paths": [coll + "?limit=100"],
                    },
                    {
                        "name": "deep pages via next (10-99 % deep, limit=100)",
                        "mode": "cycle",
                        "paths": nexts,
                    },
                    {
                        "name": "walk: next after next from 6 depths (limit=100)",
                        "mode": "walk",
                        "paths": nexts,
                    },
                    {
                        "name": f"added_after at {len(points)} random points (limit=100)",
                        "mode": "cycle",
                        "paths": [
                            coll + "?" + urlencode({"limit": 100, "added_after": p}) for p in points
                        ],
                    },
                    {"name": "mamori discovery", "mode": "cycle", "paths": ["/taxii2/"]},
                ]
                runs = drive(
                    server.base, auth, [{**common, **s} for s in scen], server.proc.pid, db
                )
                for r in runs:
                    r["workers"] = workers
                    print("mamori", json.dumps(r), flush=True)
                res["mamori"] += runs
                last = n == len(args.workers) - 1
                res["medallion"].append(
                    medallion("after" if last else f"after {workers} worker(s)")
                )
                if last:  # the official client pages the whole collection
                    res["taxii2_client"] = pull_all(server.base, secret, args.per_request, want)
                    print("taxii2-client", json.dumps(res["taxii2_client"]), flush=True)
                    res["load_after_pull"] = loadavg()
            finally:
                server.stop()
    out = HERE / "results" / f"taxii-{datetime.now(UTC):%Y-%m-%dT%H%M}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(report(res))
    print(f"\nwritten {out}")


def pull_all(base: str, secret: str, per_request: int, want: set[str]) -> dict[str, Any]:
    """taxii2-client's ``as_pages`` over the whole collection; checks it got exactly ``want``."""
    from taxii2client.v21 import Collection, as_pages

    info = json.loads(get(base, "/taxii2/mamori/collections/bench/", basic(READER, secret))[1])
    url = f"{base}/taxii2/mamori/collections/{info['id']}/"  # taxii2-client wants the id's URL
    coll = Collection(url, user=READER, password=secret)
    got: set[str] = set()
    pages = dupes = 0
    t0 = time.perf_counter()
    for env in as_pages(coll.get_objects, per_request=per_request):
        pages += 1
        for o in env.get("objects", ()):
            if o["id"] in got:
                dupes += 1
            got.add(o["id"])
    took = time.perf_counter() - t0
    return {
        "per_request": per_request,
        "pages": pages,
        "objects": len(got),
        "seconds": round(took, 1),
        "objects_per_s": round(len(got) / took),
        "exactly_readable": got == want,
        "not_readable_received": len(got - want),
        "readable_missed": len(want - got),
        "duplicates": dupes,
    }


def report(res: dict[str, Any]) -> str:
    """The Markdown table: the bar is the highest medallion discovery rate of the run."""
    bar = max(d.get("rps") or 0 for d in res["medallion"])
    lines = [
        "| request | workers | median ms | p95 ms | req/s | × medallion | server CPU ms/req |"
        " load avg | median < 10 ms | req/s ≥ medallion discovery |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|",
    ]
    for r in res["mamori"]:
        med, rps = r.get("median_ms"), r.get("rps")
        ok1 = "yes" if med is not None and med < 10 else "**no**"
        ok2 = "yes" if rps and rps >= bar else "**no**"
        if r["name"] == "mamori discovery":
            ok1 = ok2 = "(reference)"
        ratio = f"{rps / bar:.2f}" if rps and bar else "-"
        lines.append(
            f"| {r['name']} | {r.get('workers', 1)} | {med} | {r.get('p95_ms')} | {rps} |"
            f" {ratio} | {r['server_cpu_ms']} | {r['load'].split()[0]} | {ok1} | {ok2} |"
        )
    for d in res["medallion"]:
        lines.append(
            f"| medallion discovery, {d['name']} | | {d.get('median_ms')} |"
            f" {d.get('p95_ms')} | {d.get('rps')} | | {d['server_cpu_ms']} |"
            f" {d['load'].split()[0]} | | |"
        )
    if p := res.get("taxii2_client"):
        lines += [
            "",
            f"taxii2-client `as_pages(get_objects, per_request={p['per_request']})`:"
            f" {p['objects']:,} objects in {p['pages']:,} pages, {p['seconds']} s"
            f" ({p['objects_per_s']:,} objects/s); exactly the readable set:"
            f" {p['exactly_readable']} (of {res['readable']:,} readable).",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
