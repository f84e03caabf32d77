"""jitcache: a kernel recompiles when a module it compiles in changes, not only its own file.

Each run is a fresh interpreter (a subprocess), as a user's next command is: the point is what
Numba loads from its on-disk cache, which an already-imported kernel never shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mamori
from mamori import jitcache

SRC = str(Path(mamori.__file__).resolve().parents[1])

HELPER = """
import numba as nb

SCALE = {scale}

@nb.njit(cache=True)
def helper(x):
    return x * SCALE
"""

KERNEL = """
import numba as nb
from pkgx.helper import helper
{guard}

@nb.njit(cache=True)
def kernel(x):
    return helper(x) + 1
{declare}
"""

OUTER = """
import numba as nb
from pkgx.guarded import kernel
from mamori.jitcache import depends_on

@nb.njit(cache=True)
def outer(x):
    return kernel(x) * 10

depends_on(__name__, "pkgx.guarded")
"""


def _write(path: Path, text: str) -> None:
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(textwrap.dedent(text))
    # a later time than before, whatever the file system's clock resolution
    t = max(old + 2_000_000_000, path.stat().st_mtime_ns)
    os.utime(path, ns=(t, t))


def _package(root: Path, scale: int) -> None:
    pkg = root / "pkgx"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").touch()
    _write(pkg / "helper.py", HELPER.format(scale=scale))
    if not (pkg / "guarded.py").exists():
        _write(
            pkg / "guarded.py",
            KERNEL.format(
                guard="from mamori.jitcache import depends_on",
                declare='\ndepends_on(__name__, "pkgx.helper")',
            ),
        )
        _write(pkg / "plain.py", KERNEL.format(guard="", declare=""))
        _write(pkg / "outer.py", OUTER)


def _run(root: Path, expr: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), SRC])
    out = subprocess.run(
        [sys.executable, "-c", f"import pkgx.guarded, pkgx.plain, pkgx.outer; print({expr})"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


EXPR = "pkgx.guarded.kernel(3), pkgx.plain.kernel(3), pkgx.outer.outer(3)"


def test_a_changed_dependency_recompiles_the_kernels_that_declare_it(tmp_path: Path) -> None:
    _package(tmp_path, scale=2)
    assert _run(tmp_path, EXPR) == "7 7 70"
    assert _run(tmp_path, EXPR) == "7 7 70"  # from the cache, unchanged
    _package(tmp_path, scale=5)  # only helper.py changes: a constant and the helper's result
    guarded, plain, outer = _run(tmp_path, EXPR).split()
    assert guarded == "16"  # 3 * 5 + 1: recompiled against the new helper
    assert outer == "160"  # through guarded, which depends on helper: transitively too
    # Without the declaration Numba loads the kernel compiled against the old helper: the
    # hazard this module exists for (if Numba ever tracks it itself, this line will say so).
    assert plain == "7"


def test_an_unchanged_dependency_keeps_the_cache(tmp_path: Path) -> None:
    _package(tmp_path, scale=2)
    _run(tmp_path, EXPR)
    index = sorted((tmp_path / "pkgx" / "__pycache__").glob("guarded.kernel-*.nbi"))
    assert index, "the kernel was cached"
    before = [p.stat().st_mtime_ns for p in index]
    _run(tmp_path, EXPR)
    assert [p.stat().st_mtime_ns for p in index] == before  # not flushed, not rewritten


def test_a_dependency_not_imported_is_refused() -> None:
    with pytest.raises(ValueError, match=r"not imported: mamori\.no_such_module"):
        jitcache.depends_on("mamori.jitcache", "mamori.no_such_module")


def test_mamori_kernels_declare_the_kernels_they_import() -> None:
    """Every jitted function a mamori kernel module imports from another module is covered by
    that module's declaration (constants cannot be found this way; helpers can)."""
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(mamori.__path__, "mamori."):
        if ".web" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        if not list(jitcache._caches(module)):
            continue  # no kernels of its own: it only calls others' from Python
        foreign = {
            value.py_func.__module__
            for value in vars(module).values()
            if hasattr(value, "_cache")
            and getattr(getattr(value, "py_func", None), "__module__", info.name) != info.name
        }
        missing = foreign - jitcache._closure(info.name)
        assert not missing, f"{info.name} compiles in {sorted(missing)} without depends_on"


QUICK = """
import numba as nb
import numpy as np

@nb.njit(cache=True)
def ramp(n):
    out = np.empty(n, np.int64)  # an allocation: runs on Numba's runtime (NRT)
    for i in range(n):
        out[i] = i * i
    return out

@nb.njit(cache=True)
def total(xs):
    return xs.sum()
"""

QUICK_RUN = """
import numba.core.base as base
calls = []
real = base.BaseContext.refresh
base.BaseContext.refresh = lambda self: (calls.append(1), real(self))[1]
from mamori.jitcache import quick_cache_loads
{apply}
import numba as nb, numpy as np
import pkgq.kernels as k
got = int(k.total(k.ramp(10)))
hits = sum(k.ramp.stats.cache_hits.values()) + sum(k.total.stats.cache_hits.values())
loaded = len(calls)
fresh = nb.njit(lambda a: (a * 2).sum())(np.arange(4))  # compiled here, after the quick loads
print(got, hits, loaded, int(fresh), len(calls) > loaded)
"""


def _quick(root: Path, apply: bool) -> list[str]:
    pkg = root / "pkgq"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").touch()
    if not (pkg / "kernels.py").exists():
        _write(pkg / "kernels.py", QUICK)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), SRC])
    code = QUICK_RUN.format(apply="assert quick_cache_loads()" if apply else "")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_quick_cache_loads_skip_the_compiler_set_up_and_keep_compiling(tmp_path: Path) -> None:
    """Cached kernels (one allocating through Numba's runtime) load and run without the context
    refresh Numba runs before each load, and a kernel compiled afterwards still compiles (its
    compile refreshes the context itself)."""
    first = _quick(tmp_path, apply=False)  # compiles and caches both kernels
    assert first[0] == "285" and first[1] == "0"
    plain = _quick(tmp_path, apply=False)
    assert plain[:2] == ["285", "2"] and int(plain[2]) > 0  # Numba's own loads refresh
    quick = _quick(tmp_path, apply=True)
    assert quick == ["285", "2", "0", "12", "True"]
