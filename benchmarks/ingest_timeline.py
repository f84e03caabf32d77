"""When each ingest process starts, ends its capture and ends its writer: what bounds the wall time.

    python benchmarks/ingest_timeline.py benchmarks/work/workload.pcap [--rounds 4]

Prepares its process as ``mamori ingest`` does, makes the same ``LakeIngest`` (so its worker is
forked as the command forks it), and times inside both processes: seconds since this process
started at which the worker was forked, each shard's capture began and ended (with its CPU
seconds), and each process's last lake write ended (the worker's writer closes after its capture;
the calling process's too). The two processes' ends should meet; what lies before the fork and
after the captures is serial.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from mamori.flows.memory import prepare_ingest_process  # noqa: E402

prepare_ingest_process()  # before pyarrow loads, as the command does

import mamori.cli as cli  # noqa: E402

cli._as_kernel_program()

import mamori.flows.workers as W  # noqa: E402
from mamori.config import Settings  # noqa: E402
from mamori.flows.pipeline import CaptureStats  # noqa: E402

_shard = W._shard
_Ingest = W.Ingest


def _since() -> float:
    return time.perf_counter() - T0


class _TimedIngest(_Ingest):  # type: ignore[misc, valid-type]
    def capture(self, *args: object, **kwargs: object) -> CaptureStats:
        start, cpu = _since(), time.process_time()
        stats = super().capture(*args, **kwargs)
        shard = kwargs.get("shard", args[1] if len(args) > 1 else (0, 1))
        note = f"shard {shard}: capture {start:.2f}-{_since():.2f} s, {time.process_time() - cpu:.2f} CPU-s"
        stats.timeline = note  # type: ignore[attr-defined]
        return stats


def _timed_shard(*args: object, **kwargs: object) -> CaptureStats:
    stats = _shard(*args, **kwargs)  # the capture, then the worker's writer closes
    stats.timeline += f", writer closed {_since():.2f} s"  # type: ignore[attr-defined]
    return stats


W.Ingest = _TimedIngest
W._shard = _timed_shard  # the worker is forked from this process: it runs these too


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if args.rounds > 1:
        import subprocess
        import sys

        for _ in range(args.rounds):
            subprocess.run([sys.executable, __file__, str(args.capture)], check=True)
        return
    lake = Path(tempfile.mkdtemp(prefix="mamori-timeline-"))
    try:
        ingester = W.LakeIngest(Settings(), lake)
        forked = _since()
        notes: list[str] = []
        original = W.merge

        def merge(parts: list[CaptureStats]) -> CaptureStats:
            notes.extend(getattr(p, "timeline", "?") for p in parts)
            return original(parts)

        W.merge = merge
        # The caller's writer closes inside, after its capture. A capture under the command's
        # parallel_min_bytes is ingested by the caller alone, and nothing is merged.
        stats = ingester.capture(args.capture)
        ended = _since()
        notes = notes or [getattr(stats, "timeline", "?")]
        ingester.close()
        print(f"forked at {forked:.2f} s; " + "; ".join(notes) + f"; all done {ended:.2f} s")
    finally:
        shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
