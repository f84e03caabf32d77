"""Numba's on-disk cache is keyed on the file a kernel is written in, not on the files it reads.

A kernel that inlines a jitted helper or freezes a constant from another module (the tracker's
key index and prefetch hints, conn columns reading the tracker's row layout, decode calling the
shard hash) keeps its compiled form when only that other module changes: the next run loads
machine code built from the old helper or the old layout, silently. Numba documents the limit
and leaves invalidation to its user. ``depends_on`` does it for mamori's kernel modules: each
names the modules its kernels compile in, and when one of their files (or one of theirs, in
turn) has changed since the module's cache was last checked, the module's cached kernels are
flushed and compile afresh once, on first use.

The check is Numba's own notion of "changed" (a file's modification time and size) applied to
the dependencies, kept in a small stamp file beside the module's cache index. It costs a few
``stat`` calls per kernel module at import, nothing per call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

# module name -> the module names its kernels compile in (as each module declared them)
_DEPENDS: dict[str, tuple[str, ...]] = {}


def _closure(name: str) -> set[str]:
    seen: set[str] = set()
    todo = list(_DEPENDS.get(name, ()))
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(_DEPENDS.get(dep, ()))
    return seen


def stamp(names: set[str]) -> str:
    """What the dependencies' files look like now: name, modification time and size of each."""
    lines = []
    for name in sorted(names):
        path = getattr(sys.modules.get(name), "__file__", None)
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        lines.append(f"{name} {st.st_mtime_ns} {st.st_size}" if st else f"{name} ?")
    return "\n".join(lines) + "\n"


def _caches(module: ModuleType) -> Iterator[Any]:
    """The on-disk caches of the kernels defined in ``module`` (not those it imported)."""
    for value in list(vars(module).values()):
        py_func = getattr(value, "py_func", None)
        cache = getattr(value, "_cache", None)
        if (
            py_func is not None
            and getattr(py_func, "__module__", None) == module.__name__
            and hasattr(cache, "cache_path")
            and hasattr(cache, "flush")
        ):
            yield cache


def depends_on(module_name: str, *deps: str) -> bool:
    """Declare the modules (by name) ``module_name``'s kernels compile in; call it at the end of
    the module, when its kernels are defined and its dependencies imported.

    Returns True when the module's cached kernels were flushed (a dependency changed, or the
    module had no stamp yet). Where the cache cannot be written, nothing is flushed and Numba
    behaves as it would without this check.
    """
    missing = [d for d in deps if d not in sys.modules]
    if missing:  # a misspelt or unimported dependency would otherwise never count as changed
        raise ValueError(f"{module_name}: dependencies not imported: {', '.join(missing)}")
    _DEPENDS[module_name] = deps
    module = sys.modules[module_name]
    caches = list(_caches(module))
    if not caches or not getattr(module, "__file__", None):
        return False
    now = stamp(_closure(module_name))
    stamp_file = Path(caches[0].cache_path) / f"{Path(module.__file__).stem}.deps"
    try:
        if stamp_file.read_text() == now:
            return False
    except OSError:
        pass
    try:
        for cache in caches:
            cache.flush()
        tmp = stamp_file.with_name(f"{stamp_file.name}.{os.getpid()}")
        tmp.write_text(now)
        os.replace(tmp, stamp_file)
    except OSError:
        return False
    return True


_QUICK = False


def quick_cache_loads() -> bool:
    """Load cached kernels without re-running Numba's compiler set-up before each load.

    Numba's ``Cache.load_overload`` first calls ``target_context.refresh()``: on its first call
    that imports and installs every typing and lowering registry Numba has (its NumPy, cmath,
    random, typed-container and jitclass implementations, its extensions' entry points), and on
    each later one walks them again. A kernel read from the cache is machine code: it needs the
    runtime its allocations call into (NRT), not the registries, which only compiling uses, and
    every compile refreshes the context itself (``CompilerBase.__init__``). The refresh cost
    each ingest process ~0.09 s of its ~0.2 s of kernel loading, in both processes alike, so it
    was wall time. Applied by the commands (their own process and its forked workers), not at
    import: a library caller's Numba is left as it is.

    Returns whether the loads are quick now; with a Numba whose cache lacks the methods used here,
    nothing is changed.
    """
    global _QUICK
    if _QUICK:
        return True
    try:
        from numba.core import caching
        from numba.core.runtime import rtsys
    except ImportError:
        return False
    cache = getattr(caching, "Cache", None)
    if not all(
        callable(getattr(cache, name, None))
        for name in ("load_overload", "_load_overload", "_guard_against_spurious_io_errors")
    ) or not callable(getattr(rtsys, "initialize", None)):
        return False

    def load_overload(self: Any, sig: Any, target_context: Any) -> Any:
        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)
        return None  # (the guard swallowed an I/O error: compile instead, as Numba does)

    load_overload.__doc__ = cache.load_overload.__doc__
    cache.load_overload = load_overload
    _QUICK = True
    return True
