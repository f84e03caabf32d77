"""Fuzz the PCAP sensor: arbitrary bytes as a capture file, through the reader and the decoder,
or through the whole ingest.

The sensor reads captures from anywhere, so hostile input must end in a clean ``CaptureError`` or a
``CaptureProblem``, never an exception, a hang or an offset outside the record (later stages slice
the shared buffer with the decoder's offsets without re-checking them). Any other outcome is a bug.

``--pipeline`` runs each input through everything ``mamori ingest`` does to a capture (fragments,
connection tracking, payload routing, every protocol analyser, the conn columns). The pipeline
survives an analyser that raises (the connection loses its protocol rows, the capture goes on),
so an exception there reaches the user only as a logged error: here any logged error is a bug.
The records must also hold together (each table in its lake schema, conn's uids unique, every
protocol row on a connection conn has), and every fourth input is ingested again as two shards,
and every fourth other one in one batch instead of many: both must write exactly what the first
ingest wrote, damage and all.

Two modes:

* ``python fuzz/fuzz_pcap.py -max_total_time=60`` (any libFuzzer flags): coverage-guided with
  atheris, if installed.
* ``python fuzz/fuzz_pcap.py --seconds 30 [--seed N] [--data DIR] [--pipeline]``: no dependency;
  mutates the shared captures (bit flips, interesting values, truncation, splices, gzip) with a seeded RNG for a
  bounded time, so a failure is reproducible from its seed. Exit status 1 on the first failure,
  with the offending input saved (``--crash-dir``).

A hang cannot be caught in-process (the kernels are compiled loops); the caller's timeout is the
hang detector (the pytest wrapper runs this script as a subprocess with one).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import logging
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mamori.config import Settings
from mamori.flows.pipeline import Ingest
from mamori.schema import schema_of
from mamori.sensors.pcap.decode import decode
from mamori.sensors.pcap.reader import CaptureError, PcapReader

ROOT = Path(__file__).resolve().parent.parent
SEED_SUFFIXES = (".pcap", ".pcapng", ".cap")
MAX_SEED_BYTES = 256 * 1024  # small seeds keep iterations fast; damage is local anyway
SMALL_BUFFER = 1 << 16  # the reader's minimum: exercises records cut by the buffer's end


class InvariantError(AssertionError):
    """The reader or decoder returned something impossible (a bug, not bad input)."""


def check_file(path: Path, batch_bytes: int = SMALL_BUFFER) -> int:
    """Read and decode one capture; returns the number of records. Raises on any bug."""
    reader = PcapReader(path, batch_bytes)
    records = 0
    try:
        for batch in reader:
            n = len(batch)
            if batch.first_record != records:
                raise InvariantError("batches skipped or repeated records")
            size = batch.buf.shape[0]
            if n and (
                np.any(batch.caplen < 0)
                or np.any(batch.data_off < 0)
                or np.any(batch.data_off + batch.caplen > size)
                or np.any(batch.wirelen < batch.caplen)
            ):
                raise InvariantError("record outside the buffer or negative length")
            cols = decode(batch)
            rec = cols["rec"]
            if n and (len(rec) < n or np.any(rec < 0) or np.any(rec >= n)):
                raise InvariantError("decoded rows do not map to the batch's records")
            lo = batch.data_off[rec]
            hi = lo + batch.caplen[rec]
            ip_off, pay_off = cols["ip_off"], cols["pay_off"]
            pay_cap, pay_len = cols["pay_cap"], cols["pay_len"]
            bad = (
                (pay_off < lo)
                | (pay_off + pay_cap > hi)
                | (pay_cap < 0)
                | (pay_cap > pay_len)
                | ((ip_off != -1) & ((ip_off < lo) | (ip_off >= hi)))
                | (cols["parent"] >= np.arange(len(rec)))
            )
            if np.any(bad):
                r = int(np.flatnonzero(bad)[0])
                raise InvariantError(
                    f"row {r} escapes record {int(rec[r])}: ip_off={int(ip_off[r])} "
                    f"pay_off={int(pay_off[r])} pay_cap={int(pay_cap[r])} "
                    f"pay_len={int(pay_len[r])} record=[{int(lo[r])}, {int(hi[r])})"
                )
            records += n
    except CaptureError as exc:
        if "\n" in str(exc):
            raise InvariantError("CaptureError message spans lines") from exc
        return records
    if reader.problem is not None:
        text = str(reader.problem)
        if "\n" in text or not 1 <= reader.problem.record <= records + 1:
            raise InvariantError(f"bad problem report: {text!r} after {records} records")
    if reader.records != records:
        raise InvariantError("reader.records disagrees with the batches")
    return records


def check_bytes(data: bytes, workdir: Path) -> int:
    """Write ``data`` as a capture file (the reader takes paths) and check it, through the
    reader's mapped window on odd-sized inputs and its read window on the others (a file
    written to in the last minute is read: aged, it is mapped; see ``sensors/pcap/window.py``)."""
    path = workdir / "input.cap"
    path.write_bytes(data)
    if len(data) % 2:
        then = time.time() - 3600
        os.utime(path, (then, then))
    return check_file(path)


class _Errors(logging.Handler):
    """What the pipeline logged at ERROR or above: an analyser or a column path that raised."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


ONE_BATCH = 1 << 26  # larger than any seed: the whole capture in one batch


def _ingest(
    path: Path, shard: tuple[int, int], batch_bytes: int = SMALL_BUFFER
) -> tuple[dict[str, pa.Table], str | None]:
    """Every table one ingest process writes for ``shard`` of the capture, and its error."""
    parts: dict[str, list[pa.Table]] = {}

    def sink(table: str, data: pa.Table) -> None:
        parts.setdefault(table, []).append(data)

    handler = _Errors()
    logger = logging.getLogger("mamori")
    logger.addHandler(handler)
    try:
        stats = Ingest(Settings(batch_bytes=batch_bytes), sink).capture(path, shard)
    finally:
        logger.removeHandler(handler)
    if handler.records:
        first = handler.records[0]
        detail = logging.Formatter().format(first)
        raise InvariantError(f"the pipeline logged an error: {detail}")
    return {t: pa.concat_tables(v) for t, v in parts.items()}, stats.error


def _rows(table: pa.Table) -> list[tuple[object, ...]]:
    """A table's rows in a canonical order (shards emit connections in another order)."""
    return sorted(tuple(map(repr, row.values())) for row in table.to_pylist())


def _same(got: dict[str, list[pa.Table]], want: dict[str, pa.Table], how: str) -> None:
    if set(got) != set(want):
        raise InvariantError(f"{how} wrote tables {sorted(got)}, one process {sorted(want)}")
    for name, table in want.items():
        if _rows(pa.concat_tables(got[name])) != _rows(table):
            raise InvariantError(f"{how} wrote other {name} rows than one process")


def check_pipeline(path: Path, shards: bool, one_batch: bool = False) -> int:
    """Ingest one capture as ``mamori ingest`` would; returns the number of conn rows. Raises
    :class:`InvariantError` on any bug (see the module's docstring)."""
    whole, error = _ingest(path, (0, 1))
    if error is not None and "\n" in error:
        raise InvariantError("CaptureError message spans lines")
    conn = whole.get("conn")
    uids = conn.column("uid") if conn is not None else pa.array([], pa.string())
    if pc.count_distinct(uids).as_py() != len(uids) or uids.null_count:
        raise InvariantError("conn uids are not unique")
    for name, table in whole.items():
        if table.schema != schema_of(name):
            raise InvariantError(f"{name} rows are not in the lake's schema:\n{table.schema}")
        if name != "conn" and "uid" in table.column_names:
            stray = pc.invert(pc.is_in(table.column("uid"), value_set=uids))
            if pc.any(stray).as_py():
                raise InvariantError(f"{name} has rows on a connection conn does not have")
    if shards:
        split: dict[str, list[pa.Table]] = {}
        for k in range(2):
            part, _ = _ingest(path, (k, 2))
            for name, table in part.items():
                split.setdefault(name, []).append(table)
        _same(split, whole, "two shards")
    if one_batch:
        once, _ = _ingest(path, (0, 1), ONE_BATCH)
        _same({name: [table] for name, table in once.items()}, whole, "one batch")
    return len(uids)


# ------------------------------------------------------------------------------ plain mutation

INTERESTING_32 = [
    0,
    1,
    0x7F,
    0x80,
    0xFF,
    0xFFFF,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    12,
    16,
    28,
    32,
]


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One mutated capture: a few random edits of a random seed."""
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if not data:
            data = bytearray(rng.choice(seeds))
        n = len(data)
        if op == 0:  # bit flips
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1:  # interesting byte
            data[rng.randrange(n)] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0x40, 0x45, 0x60])
        elif op == 2 and n >= 4:  # interesting 32-bit field (lengths), either byte order
            at = rng.randrange(n - 3)
            data[at : at + 4] = rng.choice(INTERESTING_32).to_bytes(
                4, rng.choice(["little", "big"])
            )
        elif op == 3:  # truncation
            del data[rng.randrange(n + 1) :]
        elif op == 4:  # splice with another seed
            other = rng.choice(seeds)
            data = data[: rng.randrange(n + 1)] + other[rng.randrange(len(other) + 1) :]
        elif op == 5:  # duplicate or delete a chunk (shifts every later record)
            a = rng.randrange(n)
            b = min(n, a + rng.randint(1, 64))
            if rng.random() < 0.5:
                data[a:a] = data[a:b]
            else:
                del data[a:b]
        else:  # random bytes over a region
            a = rng.randrange(n)
            data[a : a + 16] = rng.randbytes(min(16, n - a))
    if rng.random() < 0.05:  # the gzip path, sometimes with a damaged stream
        data = bytearray(gzip.compress(bytes(data), compresslevel=1))
        if rng.random() < 0.5 and len(data) > 20:
            if rng.random() < 0.5:
                del data[rng.randrange(11, len(data)) :]
            data[rng.randrange(10, len(data))] ^= 0xFF
    return bytes(data)


def load_seeds(data_dir: Path) -> list[bytes]:
    files = sorted(
        p
        for p in data_dir.rglob("*")
        if p.suffix in SEED_SUFFIXES and p.is_file() and p.stat().st_size <= MAX_SEED_BYTES
    )
    return [p.read_bytes() for p in files]


def default_data_dir() -> Path:
    return Path(os.environ.get("MAMORI_DATA", ROOT.parent / "shared" / "data")).resolve()


def run_plain(
    seconds: float, seed: int, data_dir: Path, crash_dir: Path, pipeline: bool = False
) -> int:
    seeds = load_seeds(data_dir)
    if not seeds:
        print(f"no seed captures under {data_dir}", file=sys.stderr)
        return 2
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    runs = records = 0
    with tempfile.TemporaryDirectory(prefix="fuzz_pcap_") as tmp:
        work = Path(tmp)
        while time.monotonic() < deadline:
            data = mutate(rng, seeds)
            try:
                if pipeline:
                    path = work / "input.cap"
                    path.write_bytes(data)
                    records += check_pipeline(path, shards=runs % 4 == 0, one_batch=runs % 4 == 2)
                else:
                    records += check_bytes(data, work)
            except Exception:
                crash_dir.mkdir(parents=True, exist_ok=True)
                out = crash_dir / f"crash-{hashlib.sha1(data).hexdigest()[:16]}.cap"
                out.write_bytes(data)
                traceback.print_exc()
                print(
                    f"FAIL after {runs} runs (seed {seed}); input saved to {out}", file=sys.stderr
                )
                return 1
            runs += 1
    what = "conn rows" if pipeline else "records"
    print(f"ok: {runs} inputs, {records} {what}, seed {seed}, {len(seeds)} seed captures")
    return 0


# ------------------------------------------------------------------------------------ atheris

_work: Path | None = None  # created on first use: importing this module has no side effect


def fuzz_one_input(data: bytes) -> None:
    """atheris entry point: any exception other than CaptureError is reported as a crash."""
    global _work
    if _work is None:
        _work = Path(tempfile.mkdtemp(prefix="fuzz_pcap_atheris_"))
    check_bytes(data, _work)


def main(argv: list[str]) -> int:
    if any(a.startswith("--seconds") for a in argv[1:]) or "--plain" in argv[1:]:
        ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        ap.add_argument("--plain", action="store_true", help="(implied by --seconds)")
        ap.add_argument("--seconds", type=float, default=30.0)
        ap.add_argument("--seed", type=int, default=1)
        ap.add_argument("--data", type=Path, default=default_data_dir())
        ap.add_argument("--crash-dir", type=Path, default=Path(tempfile.gettempdir()) / "fuzz_pcap")
        ap.add_argument("--pipeline", action="store_true", help="the whole ingest, not the decoder")
        args = ap.parse_args(argv[1:])
        return run_plain(args.seconds, args.seed, args.data, args.crash_dir, args.pipeline)
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        print("atheris is not installed; use the plain mode: --seconds N", file=sys.stderr)
        return 2
    atheris.Setup(argv, fuzz_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
