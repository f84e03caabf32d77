"""Importing detection or correlation before polars hands polars the prompt-release setting, and
a user's own setting wins (fresh interpreters: polars reads the variable once, when imported)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mamori.detect.allocator import JEMALLOC_ENV, PROMPT_RELEASE


def _conf_seen_by_polars(first: str, env: dict[str, str]) -> str:
    code = f"import {first}, polars, os; print(os.environ[{JEMALLOC_ENV!r}])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize("first", ["mamori.detect", "mamori.correlate"])
def test_polars_gets_the_setting_when_mamori_loads_first(first: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != JEMALLOC_ENV}
    conf = _conf_seen_by_polars(first, env)
    assert conf.endswith("," + PROMPT_RELEASE), conf  # appended last: it overrides polars' own


def test_a_users_setting_is_kept() -> None:
    env = {**os.environ, JEMALLOC_ENV: "muzzy_decay_ms:250"}
    conf = _conf_seen_by_polars("mamori.detect", env)
    assert conf.endswith(",muzzy_decay_ms:250") and PROMPT_RELEASE not in conf.split(","), conf
