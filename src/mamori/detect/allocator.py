"""Polars' allocator hands freed pages back to the system, not to the kernel's "free when you
like" list, so resident memory falls when a detector is done (set before polars loads).

Polars allocates through its own jemalloc, which it starts with ``dirty_decay_ms:500,
muzzy_decay_ms:1000``: a freed page is first kept, then after half a second marked "muzzy"
(``MADV_FREE``), which the kernel reclaims only under pressure, so it still counts as resident.
Detection frees a detector's frames and allocates the next one's within that time, on two lanes,
so a patrol's resident memory was what several detectors had *ever* held, not what they held at
once: on the workload's lake, detection peaked at 838 MB with polars' settings and 699 MB with
``muzzy_decay_ms:0`` (pages returned with ``MADV_DONTNEED`` after the same half second), for the
same CPU time (12.1 against 12.2 s; returning them at once, ``dirty_decay_ms:0``, cost 20 s).
Polars reads ``_RJEM_MALLOC_CONF`` when it is imported and appends it to its own, so this runs
when ``mamori.detect`` or ``mamori.correlate`` is imported, which ``mamori patrol`` does before
anything imports polars. A setting the user made is kept; where polars is loaded already (it set
the variable then) this does nothing.
"""

from __future__ import annotations

import os

JEMALLOC_ENV = "_RJEM_MALLOC_CONF"  # polars' jemalloc is built with the _rjem_ symbol prefix
PROMPT_RELEASE = "muzzy_decay_ms:0"


def release_promptly() -> None:
    os.environ.setdefault(JEMALLOC_ENV, PROMPT_RELEASE)
