"""CPU time of each protocol analyser per conversation, this tree against an earlier revision.

    python benchmarks/bench_analyzers.py benchmarks/work/workload-10r.pcap --against 9729d08

The capture is ingested once (this tree's pipeline) to collect the conversations the tracker hands
to each analyser; both trees' analysers then parse exactly those conversations, each in its own
process, alternating rounds so a busy machine weighs on both alike (the earlier tree comes from
``git archive REV src``, put first on ``PYTHONPATH``). Reported: CPU microseconds per conversation,
best of ``--rounds``, and the ratio earlier/now; the outputs of both trees are compared too, and a
difference is reported (speed never at the cost of a changed record).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run in a child process: parse every conversation of every analyser, print CPU-s per analyser and
# write the rows (for the comparison) next to the conversations.
_CHILD = r"""
import gc, json, pickle, sys, time
from mamori.flows.analyzers.base import registered
convs = pickle.load(open(sys.argv[1], "rb"))
# The collector as ingest runs it (flows.collector.rare_collection): at the default threshold it
# walked every loaded conversation again and again, and an analyser run late paid for the heap
# of those before it (SSL, last, took 55 us a conversation here against 30 in ingest's setting).
gc.freeze()
gc.set_threshold(50_000, 10, 10)
for items in convs.values():  # payload as ingest hands it: views of a buffer (see _portable)
    for c in items:
        if getattr(c.segments, "_views", False):
            c.segments._sources = [memoryview(b) for b in c.segments._sources]
analyzers = registered()
times, out = {}, {}
for service, items in sorted(convs.items()):
    a = analyzers[service]
    for c in items[:50]:  # first calls import and build what an analyser keeps: not per conversation
        a.analyze(c)
    t = time.process_time()
    results = [a.analyze(c) for c in items]
    times[service] = time.process_time() - t
    out[service] = [(r.services(a), r.tables(a)) for r in results]
pickle.dump(out, open(sys.argv[2], "wb"))
print(json.dumps(times))
"""


def collect(capture: Path, dest: Path) -> dict[str, int]:
    """Ingest ``capture`` into a scratch lake and keep every conversation an analyser received."""
    import mamori.flows.pipeline as P
    from mamori.config import Settings
    from mamori.lake.writer import LakeWriter

    convs: dict[str, list[object]] = {}
    real = P._safe_analyze

    def keep(analyzer, conv):  # type: ignore[no-untyped-def]
        convs.setdefault(analyzer.service, []).append(_portable(conv))
        return real(analyzer, conv)

    P._safe_analyze = keep
    with tempfile.TemporaryDirectory() as lake, LakeWriter(Path(lake)) as writer:
        P.Ingest(Settings(), writer).capture(capture)
    P._safe_analyze = real
    dest.write_bytes(pickle.dumps(convs))
    return {k: len(v) for k, v in convs.items()}


def _portable(conv):  # type: ignore[no-untyped-def]
    """A copy of ``conv`` that pickles: ingest's segments point into the batch's buffer
    (memoryviews, valid while the batch is analysed). Kept as a ``payload.Segments`` over one
    bytes source, so the analysers read it by the same path as in ingest (the child makes the
    source a memoryview again where ingest hands the analyser views: slicing bytes copies)."""
    from copy import copy

    from mamori.flows.conversation import Segment, segment_rows
    from mamori.flows.payload import Segments

    out = copy(conv)
    views = getattr(conv.segments, "_views", None)
    rows = list(segment_rows(conv.segments))
    if views is None:  # a plain list of segments (DNS over UDP the column path left)
        out.segments = [Segment(t, o, bytes(d), g, f) for t, o, d, g, f in rows]
        return out
    data = [r for r in rows if not r[4]]
    marks = [Segment(t, o, bytes(d), g, f) for t, o, d, g, f in rows if f] or None
    ends = list(itertools.accumulate(len(r[2]) for r in data))
    cols = (
        [r[0] for r in data],
        [r[1] for r in data],
        [0] * len(data),
        [e - len(r[2]) for e, r in zip(ends, data, strict=True)],
        ends,
        [r[3] for r in data],
    )
    source = b"".join(bytes(r[2]) for r in data)
    out.segments = Segments(cols, [source], 0, len(data), views, marks)
    return out


def earlier_tree(rev: str, into: Path) -> Path:
    """``src`` of revision ``rev``, unpacked under ``into``."""
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run(convs: Path, rows: Path, pythonpath: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    else:
        env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(convs), str(rows)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument("--against", required=True, help="earlier git revision to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        counts = collect(args.capture, work / "convs.pkl")
        old_src = earlier_tree(args.against, work / "old")
        best: dict[str, dict[str, float]] = {"now": {}, "earlier": {}}
        for _ in range(args.rounds):
            for label, path in (("earlier", str(old_src)), ("now", None)):
                times = run(work / "convs.pkl", work / f"rows-{label}.pkl", path)
                for service, sec in times.items():
                    best[label][service] = min(best[label].get(service, sec), sec)
        same = pickle.loads((work / "rows-now.pkl").read_bytes()) == pickle.loads(
            (work / "rows-earlier.pkl").read_bytes()
        )
    load = os.getloadavg()
    print(f"{args.capture.name}: earlier = {args.against}, load average {load[0]:.1f}")
    print(f"{'analyser':9s} {'convs':>7s} {'earlier us':>11s} {'now us':>8s} {'ratio':>6s}")
    for service in sorted(counts, key=lambda s: -best["earlier"].get(s, 0)):
        n = counts[service]
        old_us, new_us = (1e6 * best[k][service] / n for k in ("earlier", "now"))
        print(f"{service:9s} {n:7d} {old_us:11.1f} {new_us:8.1f} {old_us / new_us:5.2f}x")
    print("records identical" if same else "RECORDS DIFFER between the two trees")


if __name__ == "__main__":
    main()
