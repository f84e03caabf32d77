"""Byte-compile the mamori package the benchmarks run, as an installed package has it.

pip byte-compiles a package when it installs it. An editable install (the README's) leaves that to
the first import, which writes ``__pycache__`` itself, unless ``PYTHONDONTWRITEBYTECODE`` is set, as
it is on the machine the figures come from: there every command compiled mamori's modules from
source again, 0.15-0.2 s of each ``mamori ingest``'s start-up (session 9), a cost no user's
installation pays after its first command. The peers' libraries (NumPy, Numba, Polars, dpkt) were
byte-compiled by pip; so mamori is too, before any timed run.
"""

from __future__ import annotations

import compileall
import importlib.util
from pathlib import Path


def byte_compile_mamori() -> Path | None:
    """Compile the package this interpreter imports as ``mamori``; its folder, or None if absent.

    ``compileall`` writes bytecode whatever ``PYTHONDONTWRITEBYTECODE`` says, and only for modules
    whose source changed since, so a second benchmark costs a few ``stat`` calls. It tells a
    changed source by its modification time alone, where the import system compares the size
    too: a file rewritten within the second its bytecode was written (a checkout, a stash) kept
    bytecode every import then found stale and compiled the source again (``flows/pipeline.py``
    and ``flows/payload.py``, 13 ms of every ingest's start-up). Those are compiled again here.
    """
    spec = importlib.util.find_spec("mamori")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    if not compileall.compile_dir(package, quiet=1):
        raise SystemExit(f"{package}: byte-compiling mamori failed (a syntax error?)")
    for source in package.rglob("*.py"):
        if _stale(source) and not compileall.compile_file(source, quiet=1, force=True):
            raise SystemExit(f"{source}: byte-compiling failed (a syntax error?)")
    return package


def _stale(source: Path) -> bool:
    """Whether the import system would find ``source``'s bytecode out of date (its header's
    modification time and size, as ``importlib`` checks them)."""
    cached = Path(importlib.util.cache_from_source(str(source)))
    try:
        head = cached.read_bytes()[:16]
        st = source.stat()
    except OSError:
        return True
    if len(head) < 16 or head[:4] != importlib.util.MAGIC_NUMBER:
        return True
    if int.from_bytes(head[4:8], "little") & 0b1:  # hash-based: checked another way, left alone
        return False
    mtime = int.from_bytes(head[8:12], "little")
    size = int.from_bytes(head[12:16], "little")
    return mtime != int(st.st_mtime) & 0xFFFFFFFF or size != st.st_size & 0xFFFFFFFF
