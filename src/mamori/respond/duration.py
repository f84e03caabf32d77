"""Durations as people write them in YAML (``4h``, ``30m``, ``1d12h``, ``90s``, or plain seconds)."""

from __future__ import annotations

import math
import re

_PART = re.compile(r"(\d+)([wdhms])")
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> int:
    """Seconds, always a positive whole number; raises ``ValueError`` saying what was wrong."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0 or value != int(value):
            raise ValueError(f"{value!r} is not a positive whole number of seconds")
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return parse_duration(int(text))
        parts = _PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            seconds = sum(int(n) * _UNIT[u] for n, u in parts)
            if seconds > 0:
                return seconds
    raise ValueError(f"{value!r} is not a duration (write e.g. 90s, 30m, 4h, 1d, 1d12h)")


def format_duration(seconds: int) -> str:
    """The shortest ``1d2h3m4s`` spelling (``0s`` for nothing)."""
    if seconds <= 0:
        return f"{seconds}s"
    out = []
    for unit in "dhms":
        n, seconds = divmod(seconds, _UNIT[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
