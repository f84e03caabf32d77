"""Python's cyclic garbage collector during a capture: rarely, and never over the startup heap.

Analysers make and drop many small objects per conversation (segments, header dicts, records),
almost none of them in reference cycles: reference counting frees them. The collector still counts
every allocation and, at its default threshold of 700, ran 484 collections over the 10-round
workload, each walking the young objects and from time to time the whole heap of imported
modules: 6-8 % of ingest's CPU for nothing. During a capture it runs every 50,000 allocations,
and ``gc.freeze`` moves what already existed (modules, compiled kernels' dispatchers) out of its
sight; both are undone after, so a long-lived process (the console, the tests) keeps its policy.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000


@contextmanager
def quiet_imports() -> Iterator[None]:
    """No collection while a command imports its stages (Numba, pyarrow, the analysers ...).

    Imports create tens of thousands of long-lived objects (functions, classes, type objects)
    and almost no garbage; at the default threshold the collector walked them over and over:
    ~35 ms of the ingest command's ~0.3 s start, the part before its workers fork, when the
    second core has nothing to do yet. What the imports leave is never collected later either
    (``rare_collection`` freezes it).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextmanager
def rare_collection() -> Iterator[None]:
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
