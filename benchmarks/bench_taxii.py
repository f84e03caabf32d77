"""TAXII 2.1 GET objects, paged: mamori's server against medallion (the OASIS reference server) on
the same objects, in the same run, both on loopback, both driven by the same HTTP client.

    python benchmarks/bench_taxii.py                 # 100k objects; medallion at 100k and 1k
    python benchmarks/bench_taxii.py --objects 20000 --common 1000 --pages 50   # quicker

The objects are STIX 2.1 indicators cut from the real OASIS example bundles
(``threat-intel/stix2.1-examples``): every indicator of apt1.json and poisonivy.json cycled, each
copy with its own id and address, TLP:GREEN. mamori's collection is seeded straight through its
storage layer (stix2-validator at ~12 ms an object would take 20 minutes for 100k, and validation
is not what is measured); medallion gets the same objects in its memory backend's data file.

Measured, each as requests per second of one sequential client (httpx, keep-alive):

1. ``walk``: the first request, then ``next`` page after page (``limit`` objects each), the way a
   TAXII client pulls a collection.
2. ``added_after``: fresh queries (no ``next``) starting at random points of the collection, the
   way many partners each resuming from their own last pull hit a server.

At the full size medallion is given ``--medallion-timeout`` seconds to answer its first request (its
memory backend filters in Python with nested loops over every object, so its first page costs
O(n²)); at ``--common`` objects both servers run every measurement and the ratio is reported.
Results are printed as Markdown and written to ``benchmarks/results/taxii-<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from mamori.share import partners  # noqa: E402
from mamori.share.taxii import ingest, storage  # noqa: E402
from mamori.share.tlp import Tlp  # noqa: E402
from mamori.store import Store  # noqa: E402
from support.taxii_peers import (  # noqa: E402
    MEDALLION_COLLECTION,
    MEDALLION_USER,
    TAXII,
    free_port,
    medallion_server,
)

NS = uuid.UUID("5b7c1c1e-7d36-4b8a-9d59-1f0e6c5d7a10")


def make_objects(n: int, data_dir: Path) -> list[dict[str, Any]]:
    examples = data_dir / "threat-intel/stix2.1-examples/examples/threat-reports"
    templates = [
        o
        for f in ("apt1.json", "poisonivy.json")
        for o in json.loads((examples / f).read_text())["objects"]
        if o["type"] == "indicator"
    ]
    out = []
    for i in range(n):
        t = templates[i % len(templates)]
        ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        out.append(
            {
                **t,
                "id": f"indicator--{uuid.uuid5(NS, str(i))}",
                "pattern": f"[ipv4-addr:value = '{ip}']",
                "pattern_type": "stix",
                "object_marking_refs": [Tlp.GREEN.marking_id],
            }
        )
    return out


def seed_mamori(url: str, objects: list[dict[str, Any]]) -> str:
    store = Store(url)
    secret = partners.add(store, "bench", ["bench"], can_read=True)
    with store.begin() as conn:
        cid = partners.ensure_collection(conn, "bench")
        storage.add(conn, cid, ingest.items_for(conn, cid, objects, "local"))
    store.close()
    return secret


class MamoriServer:
    """mamori serve's app under uvicorn, in its own process (like medallion)."""

    def __init__(self, url: str) -> None:
        self.port = free_port()
        code = (
            "import uvicorn; from mamori.store import Store; from mamori.web.app import create_app;"
            f"uvicorn.run(create_app(Store({url!r})), host='127.0.0.1', port={self.port},"
            " log_level='warning', access_log=False)"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        self.root = f"http://127.0.0.1:{self.port}/taxii2/mamori/"

    def wait(self, auth: tuple[str, str]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.root, auth=auth, headers={"Accept": TAXII}).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("mamori did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def walk(http: httpx.Client, url: str, limit: int, pages: int, timeout: float) -> dict[str, Any]:
    """First request then ``next`` pages; times the first apart from the rest."""
    params: dict[str, Any] = {"limit": limit}
    t0 = time.perf_counter()
    try:
        r = http.get(url, params=params, timeout=timeout)
    except httpx.TimeoutException:
        return {"first_s": None, "timeout_s": timeout}
    first = time.perf_counter() - t0
    r.raise_for_status()
    body = r.json()
    got = len(body.get("objects", []))
    n = 1
    t1 = time.perf_counter()
    while body.get("more") and n < pages:
        r = http.get(url, params={**params, "next": body["next"]}, timeout=timeout)
        r.raise_for_status()
        body = r.json()
        got += len(body.get("objects", []))
        n += 1
    rest = time.perf_counter() - t1
    total = first + rest
    return {
        "requests": n,
        "objects": got,
        "first_s": round(first, 4),
        "next_rps": round((n - 1) / rest, 1) if n > 1 else None,
        "walk_rps": round(n / total, 2),
    }


def added_after(
    http: httpx.Client,
    url: str,
    stamps: list[str],
    limit: int,
    n: int,
    timeout: float,
    seed: int,
    budget: float = 120.0,
) -> dict[str, Any]:
    """Up to ``n`` fresh queries (same random points for both servers), or ``budget`` seconds."""
    rnd = random.Random(seed)
    points = [rnd.choice(stamps) for _ in range(n)]
    t0 = time.perf_counter()
    got = done = 0
    for p in points:
        try:
            r = http.get(url, params={"limit": limit, "added_after": p}, timeout=timeout)
        except httpx.TimeoutException:
            return {"requests": done, "timeout_s": timeout}
        r.raise_for_status()
        got += len(r.json().get("objects", []))
        done += 1
        if time.perf_counter() - t0 > budget:
            break
    dt = time.perf_counter() - t0
    return {"requests": done, "objects": got, "rps": round(done / dt, 2)}


def manifest_stamps(http: httpx.Client, url: str, limit: int) -> list[str]:
    """date_added of every object (through the manifest), for added_after starting points."""
    out: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        body = http.get(url, params=params, timeout=600).json()
        out += [e["date_added"] for e in body.get("objects", [])]
        if not body.get("more"):
            return out
        params = {**params, "next": body["next"]}


def run_mamori(objects, limit, pages, queries, timeout, work: Path) -> dict[str, Any]:
    url = f"sqlite:///{work / f'mamori-{len(objects)}.db'}"
    t0 = time.perf_counter()
    secret = seed_mamori(url, objects)
    seeded = time.perf_counter() - t0
    server = MamoriServer(url)
    auth = ("bench", secret)
    try:
        server.wait(auth)
        with httpx.Client(auth=auth, headers={"Accept": TAXII}) as http:
            coll = f"{server.root}collections/bench/"
            w = walk(http, coll + "objects/", limit, pages, timeout)
            stamps = manifest_stamps(http, coll + "manifest/", 1000)
            a = added_after(http, coll + "objects/", stamps, limit, queries, timeout, 1)
    finally:
        server.stop()
    return {"objects": len(objects), "seed_s": round(seeded, 1), "walk": w, "added_after": a}


def run_medallion(objects, limit, pages, queries, timeout, work: Path) -> dict[str, Any]:
    with (
        medallion_server(work / "medallion", objects, max_page_size=limit) as root,
        httpx.Client(auth=MEDALLION_USER, headers={"Accept": TAXII}) as http,
    ):
        coll = f"{root}collections/{MEDALLION_COLLECTION}/"
        w = walk(http, coll + "objects/", limit, pages, timeout)
        if w.get("first_s") is None:
            return {"objects": len(objects), "walk": w, "added_after": None}
        base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
        stamps = [
            datetime.fromtimestamp(base + i / 1e6, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            for i in range(len(objects))
        ]  # medallion_data() adds object i at 2026-01-01 + i µs
        a = added_after(http, coll + "objects/", stamps, limit, queries, timeout, 1)
    return {"objects": len(objects), "walk": w, "added_after": a}


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}×" if a and b else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--common", type=int, default=1_000, help="size both servers can serve")
    ap.add_argument("--limit", type=int, default=100, help="objects per page")
    ap.add_argument("--pages", type=int, default=200, help="pages per walk")
    ap.add_argument("--queries", type=int, default=20, help="added_after queries")
    ap.add_argument("--medallion-timeout", type=float, default=60.0)
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MAMORI_DATA", ROOT.parent / "shared/data")),
    )
    args = ap.parse_args()
    objects = make_objects(args.objects, args.data)
    common = objects[: args.common]
    res: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), **vars(args)}
    res["data"] = str(args.data)
    with tempfile.TemporaryDirectory(prefix="bench-taxii-") as tmp:
        work = Path(tmp)
        q, lim, pg, to = args.queries, args.limit, args.pages, args.medallion_timeout
        res["mamori_full"] = run_mamori(objects, lim, pg, q, to, work)
        print("mamori full", json.dumps(res["mamori_full"]), flush=True)
        res["medallion_full"] = run_medallion(objects, lim, pg, q, to, work)
        print("medallion full", json.dumps(res["medallion_full"]), flush=True)
        res["mamori_common"] = run_mamori(common, lim, pg, q, to, work)
        print("mamori common", json.dumps(res["mamori_common"]), flush=True)
        res["medallion_common"] = run_medallion(common, lim, pg, q, 600, work)
        print("medallion common", json.dumps(res["medallion_common"]), flush=True)
    out = HERE / "results" / f"taxii-{datetime.now(UTC):%Y-%m-%d}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(report(res))
    print(f"\nwritten {out}")


def report(res: dict[str, Any]) -> str:
    mf, df = res["mamori_full"], res["medallion_full"]
    mc, dc = res["mamori_common"], res["medallion_common"]

    def row(name: str, m: dict[str, Any], d: dict[str, Any]) -> list[str]:
        mw, dw = m["walk"], d["walk"]
        ma, da = m["added_after"], d.get("added_after") or {}
        first = (
            f"{dw['first_s']} s"
            if dw.get("first_s") is not None
            else f"no answer in {dw['timeout_s']:.0f} s"
        )
        return [
            f"| {name}: walk (first + `next` pages), req/s | {mw['walk_rps']} | "
            f"{dw.get('walk_rps', 'n/a')} | {ratio(mw['walk_rps'], dw.get('walk_rps'))} |",
            f"| {name}: first page | {mw['first_s']} s | {first} | |",
            f"| {name}: `next` pages only, req/s | {mw['next_rps']} | {dw.get('next_rps', 'n/a')} |"
            f" {ratio(mw['next_rps'], dw.get('next_rps'))} |",
            f"| {name}: `added_after` at random points, req/s | {ma['rps']} | {da.get('rps', 'n/a')}"
            f" | {ratio(ma['rps'], da.get('rps'))} |",
        ]

    lines = [
        "| measurement | mamori | medallion | mamori / medallion |",
        "|---|---:|---:|---:|",
        *row(f"{mf['objects']:,} objects", mf, df),
        *row(f"{mc['objects']:,} objects", mc, dc),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
