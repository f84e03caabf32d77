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
    whose source changed since, so a second benchmark costs a few ``stat`` calls.
    """
    spec = importlib.util.find_spec("mamori")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    if not compileall.compile_dir(package, quiet=1):
        raise SystemExit(f"{package}: byte-compiling mamori failed (a syntax error?)")
    return package
