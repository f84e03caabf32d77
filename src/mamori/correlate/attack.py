"""ATT&CK technique names and kill-chain order, from the table ``scripts/gen_attack.py`` generates."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def _data() -> dict[str, object]:
    return json.loads(resources.files("mamori.correlate").joinpath("attack.json").read_text())


def technique_name(tid: str) -> str:
    """'T1046' -> 'Network Service Discovery'; a sub-technique is named with its parent."""
    techniques: dict[str, dict[str, object]] = _data()["techniques"]  # type: ignore[assignment]
    t = techniques.get(tid)
    if t is None:
        return tid
    name = str(t["name"])
    if "." in tid and tid.split(".")[0] in techniques:
        name = f"{techniques[tid.split('.')[0]]['name']}: {name}"
    return name


def tactics_of(tid: str) -> list[str]:
    techniques: dict[str, dict[str, object]] = _data()["techniques"]  # type: ignore[assignment]
    t = techniques.get(tid) or techniques.get(tid.split(".")[0])
    return list(t["tactics"]) if t else []  # type: ignore[arg-type]


def stage_rank(tid: str) -> int:
    """Position of the technique's earliest tactic in the kill chain (unknown: last)."""
    order: list[str] = _data()["tactics"]  # type: ignore[assignment]
    ranks = [order.index(t) for t in tactics_of(tid) if t in order]
    return min(ranks) if ranks else len(order)


def tactic_order() -> list[str]:
    return list(_data()["tactics"])  # type: ignore[arg-type]
