"""Hash chains for logs that must show any edit, deletion or reordering (audit, custody).

Each entry's hash covers the previous entry's hash and the entry's canonical JSON, so changing,
removing or moving one entry breaks every link after it; verification names the first broken one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical(body: Mapping[str, Any]) -> bytes:
    """Key-sorted, whitespace-free JSON: the same body always hashes the same."""
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def link(prev: str, body: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + canonical(body)).hexdigest()


@dataclass(frozen=True)
class Break:
    """The first place a chain fails: entry number (0-based) and why."""

    index: int
    reason: str


def verify(entries: Iterable[tuple[Mapping[str, Any], str, str]]) -> Break | None:
    """Check ``(body, prev, hash)`` triples in order; ``None`` when the chain is whole."""
    expected_prev = GENESIS
    for i, (body, prev, digest) in enumerate(entries):
        if prev != expected_prev:
            return Break(i, f"entry {i} does not follow entry {i - 1} (deleted or reordered)")
        if link(prev, body) != digest:
            return Break(i, f"entry {i} was altered: its content does not match its hash")
        expected_prev = digest
    return None
