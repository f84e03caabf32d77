"""An ingest process puts Arrow's C++ allocations on the system allocator and never loads pandas.

Each check runs in a fresh interpreter: both settings only work before pyarrow is imported, and
the test process itself has long imported it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from mamori.flows.memory import ARROW_POOL_ENV

# Writes a Parquet file (the writer's buffers come from Arrow's C++ default pool) and converts
# NumPy and Python values (pyarrow's first conversion imports pandas if it can).
_PROBE = """
import sys, tempfile
{prepare}
import numpy as np, polars as pl, pyarrow as pa, pyarrow.parquet as pq
table = pa.table({{"a": pa.array(np.arange(100_000)), "b": pa.array(["x"] * 100_000)}})
pl.from_arrow(table).to_arrow()
with tempfile.TemporaryDirectory() as tmp:
    pq.write_table(table, tmp + "/t.parquet", compression="zstd")
print(pa.mimalloc_memory_pool().max_memory(), "pandas" in sys.modules)
"""
_PREPARE = "from mamori.flows.memory import prepare_ingest_process; prepare_ingest_process()"


def _probe(prepare: bool, pool: str | None = None) -> tuple[int, bool]:
    env = {k: v for k, v in os.environ.items() if k != ARROW_POOL_ENV}
    if pool:
        env[ARROW_POOL_ENV] = pool
    code = _PROBE.format(prepare=_PREPARE if prepare else "")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    peak, pandas = out.stdout.split()
    return int(peak), pandas == "True"


def test_ingest_process_keeps_arrow_off_mimalloc_and_pandas_unloaded() -> None:
    assert _probe(prepare=True) == (0, False)


def test_without_preparation_arrow_uses_mimalloc_and_loads_pandas() -> None:
    """The control: what the preparation changes (so the test above can fail)."""
    peak, pandas = _probe(prepare=False)
    assert peak > 0
    assert pandas == (importlib.util.find_spec("pandas") is not None)


def test_a_pool_the_user_chose_is_kept() -> None:
    peak, _ = _probe(prepare=True, pool="mimalloc")
    assert peak > 0


# Frees 24 MiB of heap blocks (each below the mmap threshold, so on the heap) and reports how much
# of it stays resident: glibc returns a freed heap top above M_TRIM_THRESHOLD to the kernel.
_TRIM_PROBE = """
import ctypes, os
{flat}
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
fd = os.open("/proc/self/statm", os.O_RDONLY)  # no buffer malloc'd above the blocks
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    return int(os.pread(fd, 200, 0).split()[1]) * page
size = 96 * 1024
blocks = [libc.malloc(size) for _ in range(256)]
for b in blocks:
    ctypes.memset(b, 1, size)
before = rss()
for b in reversed(blocks):
    libc.free(b)
print(before - rss())
"""


def _returned_after_free(flat: bool) -> int:
    code = _TRIM_PROBE.format(
        flat="from mamori.flows.memory import keep_memory_flat; keep_memory_flat()" if flat else ""
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_freed_heap_stays_for_the_next_batch_up_to_the_trim_threshold() -> None:
    """An ingest process keeps a freed heap top (below 32 MiB) instead of handing it back to be
    faulted in again by the next batch; glibc's default returns it at once (the control)."""
    assert _returned_after_free(flat=False) > 16 * 1024 * 1024
    assert _returned_after_free(flat=True) < 4 * 1024 * 1024
