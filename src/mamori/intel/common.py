"""Helpers shared by the importers: reading a file with errors that name it, timestamps, TLP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mamori.intel.schema import TLPS, IntelFormatError


def read_json(path: Path) -> Any:
    """The parsed file; any failure becomes one IntelFormatError naming the file and the reason."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IntelFormatError(f"{path}: cannot read: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise IntelFormatError(f"{path}: not valid JSON: {exc}") from exc
    except ValueError as exc:  # a number past Python's digit limit for int()
        raise IntelFormatError(f"{path}: not usable JSON: {exc}") from exc
    except RecursionError:
        raise IntelFormatError(f"{path}: JSON nested too deeply to read") from None


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 / ISO time (STIX, MISP) or epoch seconds, as UTC; None when absent or bad."""
    if value in (None, ""):
        return None
    try:
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
            return datetime.fromtimestamp(float(value), tz=UTC)
        text = str(value).replace("Z", "+00:00")
        ts = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def tlp_name(text: str) -> str | None:
    """``"TLP:WHITE"``, ``"tlp:green"``, ``"amber+strict"`` → a TLP 2.0 name (WHITE is CLEAR)."""
    name = text.strip().lower().removeprefix("tlp:").strip()
    name = "clear" if name == "white" else name
    return name if name in TLPS else None


def check_tlp(value: str) -> str:
    name = tlp_name(value)
    if name is None:
        raise ValueError(f"unknown TLP {value!r}; known: {', '.join(TLPS)} (white = clear)")
    return name
