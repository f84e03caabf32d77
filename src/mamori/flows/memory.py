"""Allocator settings that keep ingest's memory flat (peak RSS is one of its promises).

Ingest allocates and frees batch-sized NumPy and Arrow buffers over and over. glibc raises its
mmap threshold after each large free, so later large arrays land on the heap, where freed space
fragments and is never returned. Measured on the 10-round workload, one process: 850 MiB peak with
the defaults, 671 MiB with a fixed mmap threshold, two malloc arenas and Arrow on the system
allocator.

Two of the settings must be made before the libraries load, which is why they are a separate
step (:func:`prepare_ingest_process`) that the ``ingest`` command and every worker process take
first: Arrow's C++ code (the Parquet writer's page, encoding and compression buffers, the IPC
schema) allocates from ``arrow::default_memory_pool()``, which is mimalloc unless
``ARROW_DEFAULT_MEMORY_POOL`` says otherwise when libarrow loads; ``pa.set_memory_pool`` only
changes the pool Python-side calls use. mimalloc reserves a 1 GiB arena and keeps ~45 MB of it
resident per process through a run; the system pool does not (session 4, benchmarks/README.md).
And pyarrow imports pandas (~40 MB per process) the first time any ``pa.array`` or
``Table.from_pylist`` runs, only to ask whether its argument is a pandas object; ingest never
hands it one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.abc
import logging
import os
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Every buffer above this is its own mapping, returned when freed; every one below is served
# from the heap, whose freed space the next batch reuses. A batch's NumPy columns (decode's are
# ~1 MB each at 120 k rows) and Arrow's page buffers are mostly between 256 KiB and a few MB, and
# as fresh mappings each cost page faults and zeroed pages again every batch (clear_page was 8 %
# of a two-process ingest's samples under ``perf``). Workload, both processes: 256 KiB gave
# ~290 k minor faults and 1.2-1.6 s of system time, 4 MiB ~110 k and 0.8-1.0 s, for 30 MB more
# peak resident memory in the tree (755 against 726 MB; 820 against 761 on the 4 GB big.pcap).
# 64 KiB saved another ~5 MB a process but cost 3 s of system time on ~30 CPU-seconds.
MMAP_THRESHOLD = 4 * 1024 * 1024
ARENAS = 2
# Free space at the top of the heap is kept up to this much, and the heap grows by this much more
# than asked, instead of being returned to the kernel after every batch and faulted back in page by
# page for the next: the kept payload alone is ~730 MB of short-lived ``bytes`` on the workload.
# Measured (2 processes, workload, 3 rounds): 2.1-2.4 s of system time and ~440 k minor faults
# with glibc's 128 KiB / 0 defaults, 1.4-1.6 s and ~150 k with these, for ~10 MB more resident
# per process.
TRIM_THRESHOLD = 32 * 1024 * 1024
TOP_PAD = 8 * 1024 * 1024
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
_done = False
_prepared_early = False  # prepare_ingest_process ran before pyarrow and pandas loaded


class HiddenModule(importlib.abc.MetaPathFinder):
    """Makes a package (``top`` and its submodules) look uninstalled to this process, a case the
    libraries that would import it handle as normal."""

    top = ""
    where = ""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == self.top or name.startswith(self.top + "."):
            raise ModuleNotFoundError(f"{name} is not loaded {self.where}", name=name)
        return None


def hide(finder: type[HiddenModule]) -> None:
    """Install ``finder`` once, unless its package is already loaded (then it would hide nothing
    and only confuse a later import)."""
    if finder.top not in sys.modules and not any(isinstance(f, finder) for f in sys.meta_path):
        sys.meta_path.insert(0, finder())


class _WithoutPandas(HiddenModule):
    """pyarrow and polars both handle a missing pandas as a normal case."""

    top = "pandas"
    where = "in an ingest process"


class WithoutScipy(HiddenModule):
    """Numba handles a missing SciPy as a normal case (the ``ingest`` command's ``_without_scipy``
    says why it is hidden)."""

    top = "scipy"
    where = "by mamori ingest"


def prepare_ingest_process() -> None:
    """First thing in a process that only ingests: Arrow's C++ pool on the system allocator, and
    pandas never loaded.

    Must run before pyarrow is imported; afterwards the pool choice reaches only the processes
    this one starts (they inherit the environment). A pool the user chose is kept. pandas then
    looks uninstalled to this process: not for library callers, who may need it after ingest.
    """
    global _prepared_early
    _prepared_early = _prepared_early or (
        "pyarrow" not in sys.modules and "pandas" not in sys.modules
    )
    os.environ.setdefault(ARROW_POOL_ENV, "system")
    hide(_WithoutPandas)


def forks_prepared() -> bool:
    """Whether a process forked from this one is prepared as a spawned worker would be.

    It is when :func:`prepare_ingest_process` ran here before pyarrow or pandas loaded (as the
    ``ingest`` command does): a fork inherits this process's Arrow pool and the absence of pandas,
    so it needs no fresh interpreter, imports nor pool choice of its own (``flows.workers``).
    """
    return _prepared_early and ARROW_POOL_ENV in os.environ and "pandas" not in sys.modules


def keep_memory_flat() -> None:
    """Apply once per process; harmless where glibc is absent (another libc keeps its defaults)."""
    global _done
    if _done:
        return
    _done = True
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    settings = (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (_M_ARENA_MAX, ARENAS),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (_M_TOP_PAD, TOP_PAD),
    )
    if not all([mallopt(param, value) for param, value in settings]):
        log.debug("mallopt refused the ingest memory settings")
