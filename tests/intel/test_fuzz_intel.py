"""Runs the intel importers' fuzz target for a bounded time so CI exercises it on every run
(``support.fuzzing``: a subprocess with a timeout, a fixed seed), and checks its checker."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.fuzzing import run_target, target_module

SECONDS = 20


@pytest.mark.slow
def test_intel_fuzz_finds_nothing(data_dir: Path, tmp_path: Path) -> None:
    runs, out = run_target("fuzz_intel", SECONDS, "20251125", data_dir, tmp_path)
    assert runs > 500, out  # it really ran
    assert ".json 2" in out and ".txt 2" in out, out  # the shared feeds were among the seeds


def test_intel_fuzz_checker_passes_a_feed_and_flags_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checker counts a good feed's rows, accepts a clear refusal, and flags an importer
    that raises anything else or refuses without naming the file."""
    fuzz_intel = target_module("fuzz_intel")
    from mamori.intel import plain
    from mamori.intel.schema import IntelFormatError

    good = tmp_path / "list.txt"
    good.write_text("192.0.2.1\nevil.example\n")
    assert fuzz_intel.check_file(good) == 2
    junk = tmp_path / "junk.txt"
    junk.write_text("no entries here\n")
    assert fuzz_intel.check_file(junk) == 0  # "junk.txt: no line is an IP, ..." is right

    def crashes(path: Path, tlp: str) -> object:
        raise KeyError("a bug in the importer")

    monkeypatch.setattr(plain, "load", crashes)
    with pytest.raises(fuzz_intel.InvariantError, match="KeyError"):
        fuzz_intel.check_file(good)

    def nameless(path: Path, tlp: str) -> object:
        raise IntelFormatError("something is wrong")

    monkeypatch.setattr(plain, "load", nameless)
    with pytest.raises(fuzz_intel.InvariantError, match="cannot act on"):
        fuzz_intel.check_file(good)


def test_pattern_checker_flags_what_is_not_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    fuzz_intel = target_module("fuzz_intel")
    fuzz_intel.check_pattern("[ipv4-addr:value = '192.0.2.1']")
    fuzz_intel.check_pattern("[ipv4-addr:value = ")  # bad syntax: a refusal, fine
    fuzz_intel.check_pattern("[" + "(" * 100_000 + "]")  # refused by depth, not by the stack

    def recurses(text: str) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(fuzz_intel, "parse", recurses)
    with pytest.raises(fuzz_intel.InvariantError, match="RecursionError"):
        fuzz_intel.check_pattern("[ipv4-addr:value = '192.0.2.1']")
