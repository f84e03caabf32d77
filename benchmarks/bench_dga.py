"""`dns.dga` now against `dns.dga` at an earlier commit, in one run, on one synthetic DNS table.

    python benchmarks/bench_dga.py [--rows 1000000] [--against 1bbbb1d] [--bots 20]

The earlier detector (``dga.py``, ``dga_features.py`` and ``dga_model.json`` of ``--against``,
read with ``git show``) is loaded beside the current one under another detector id, and both run
on the same frame, alternately, three times; the best CPU and wall seconds of each and their
ratio are printed with the load average (the machine is shared: only the ratio means much).

The frame: ``--rows`` queries from 2 000 clients over six hours; names are benign labels of the
shared OpenDNS lists with a Zipf-like popularity (clients repeat names, as real ones do); the
first ``--bots`` clients draw half their names from the DGA lists. Data: ``$MAMORI_DATA``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent


def load_earlier(rev: str, tmp: Path) -> None:
    """Registers the detector of ``rev`` as ``dns.dga@rev`` (its own features module and
    model file, so nothing of the current one is shared)."""

    def show(path: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    model = tmp / "dga_model.json"
    model.write_text(show("src/mamori/detect/detectors/dga_model.json"))
    feats = show("src/mamori/detect/dga_features.py").replace(
        'MODEL_PATH = Path(__file__).resolve().parent / "detectors" / "dga_model.json"',
        f"MODEL_PATH = Path({str(model)!r})",
    )
    (tmp / "earlier_dga_features.py").write_text(feats)
    det = show("src/mamori/detect/detectors/dga.py")
    det = det.replace("from mamori.detect.dga_features import", "from earlier_dga_features import")
    det = det.replace('"dns.dga",', f'"dns.dga@{rev}",', 1)
    (tmp / "earlier_dga.py").write_text(det)
    sys.path.insert(0, str(tmp))
    spec = importlib.util.spec_from_file_location("earlier_dga", tmp / "earlier_dga.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["earlier_dga"] = mod
    spec.loader.exec_module(mod)


def workload(rows: int, bots: int) -> pl.DataFrame:
    spec = importlib.util.spec_from_file_location("train_dga", ROOT / "scripts" / "train_dga.py")
    assert spec and spec.loader
    train = importlib.util.module_from_spec(spec)
    sys.modules["train_dga"] = train
    spec.loader.exec_module(train)
    dga, benign = train.load()
    rng = np.random.default_rng(1)
    bad = np.concatenate([v[:3000] for v in dga.values()])
    client = rng.integers(0, 2000, rows)
    pick = np.minimum(rng.zipf(1.3, rows) - 1, len(benign) - 1)
    label = benign[rng.permutation(len(benign))][pick].astype(object)
    bot = (client < bots) & (rng.random(rows) < 0.5)
    label[bot] = bad[rng.integers(0, len(bad), int(bot.sum()))]
    tld = np.array([".com", ".net", ".org", ".ru", ".info"])[rng.integers(0, 5, rows)]
    t0 = np.datetime64("2026-01-01T00:00:00", "us")
    ts = np.sort(t0 + rng.integers(0, 6 * 3600 * 10**6, rows).astype("timedelta64[us]"))
    return pl.DataFrame(
        {
            "ts": pl.Series(ts).dt.replace_time_zone("UTC"),
            "uid": [f"C{i}" for i in range(rows)],
            "orig_h": np.char.add("10.0.", client.astype(str)),
            "resp_h": "192.0.2.53",
            "query": np.char.add(np.char.add("www.", label.astype(str)), tld),
            "qtype_name": "A",
            "rcode_name": np.where(rng.random(rows) < 0.1, "NXDOMAIN", "NOERROR"),
        }
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--against", default="1bbbb1d")
    ap.add_argument("--bots", type=int, default=20)
    args = ap.parse_args()
    from mamori.detect.base import registered

    with tempfile.TemporaryDirectory() as tmp:
        load_earlier(args.against, Path(tmp))
        dns = workload(args.rows, args.bots)
        runs = {
            "now": registered()["dns.dga"],
            args.against: registered()[f"dns.dga@{args.against}"],
        }
        best: dict[str, list[tuple[float, float, int]]] = {k: [] for k in runs}
        for d in runs.values():
            d.run({"dns": dns.lazy()}).collect()  # loads the model once
        for _ in range(3):
            for name, d in runs.items():
                cpu, wall = time.process_time(), time.perf_counter()
                n = d.run({"dns": dns.lazy()}).collect().height
                best[name].append((time.process_time() - cpu, time.perf_counter() - wall, n))
    load = os.getloadavg()
    print(f"{args.rows} rows, {args.bots} bots, load average {load[0]:.1f} {load[1]:.1f}")
    for name, r in best.items():
        print(f"{name:>10}: best CPU {min(x[0] for x in r):.3f} s, wall {min(x[1] for x in r):.3f} s,"
              f" {r[0][2]} alerts")  # fmt: skip
    now, then = best["now"], best[args.against]
    print(
        f"now / {args.against}: CPU {min(x[0] for x in now) / min(x[0] for x in then):.2f}x,"
        f" wall {min(x[1] for x in now) / min(x[1] for x in then):.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
