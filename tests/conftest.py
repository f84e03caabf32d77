"""Shared fixtures: where the shared captures live.

The shared data is read in place (``MAMORI_DATA``, default ``../shared/data`` beside the checkout);
it is never copied into the project. Its absence is an error, not a skip: a suite that silently
skips its conformance tests proves nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests judge behaviour, not speed: on a loaded 2-core CI machine a per-example deadline
# only makes them flaky (speed is measured in benchmarks/).
settings.register_profile("mamori", deadline=None)
settings.load_profile("mamori")

ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    return Path(os.environ.get("MAMORI_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "SOURCES.md").is_file():
        pytest.fail(f"shared data not found at {path}; set MAMORI_DATA")
    return path


@pytest.fixture(autouse=True, scope="session")
def _hermetic_data_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Intel lives in the XDG data home by default; a developer's own store must not leak into
    tests (intel.match would find their indicators in the shared captures)."""
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))


@pytest.fixture(autouse=True)
def _no_ingest_setup_leaks() -> object:
    """``mamori ingest`` run in-process (Typer's runner) prepares the whole process for ingest
    only: pandas hidden, Arrow's allocator chosen (``flows.memory.prepare_ingest_process``).
    Undone after each test, so a later one sees an ordinary process, as a user's would be."""
    finders = list(sys.meta_path)
    pool = os.environ.get("ARROW_DEFAULT_MEMORY_POOL")
    yield
    sys.meta_path[:] = finders
    if pool is None:
        os.environ.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    else:
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = pool
