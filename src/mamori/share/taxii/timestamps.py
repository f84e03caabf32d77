"""TAXII / STIX timestamps as integer microseconds, and back.

TAXII ``date_added`` and ``added_after`` are compared exactly, so they travel as integers inside
the server and become text (microsecond precision, ``Z``) only at the door.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_us(text: str) -> int:
    """``2016-04-06T20:03:48.123Z`` (any fraction, or none) → microseconds since the epoch."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"not a timestamp: {text!r}")
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    head, dot, rest = s.partition(".")
    if dot:  # fromisoformat wants 3 or 6 fraction digits on 3.11; normalise to 6
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        s = f"{head}.{(digits + '000000')[:6]}{tz}"
    ts = datetime.fromisoformat(s)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    delta = ts - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_us(us: int) -> str:
    """Microseconds since the epoch → ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    secs, micro = divmod(int(us), 1_000_000)
    return f"{_seconds(secs)}.{micro:06d}Z"


@lru_cache(maxsize=4096)
def _seconds(secs: int) -> str:
    # A page's objects were mostly added in the same second: format that second once.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))


def now_us() -> int:
    return time.time_ns() // 1000
