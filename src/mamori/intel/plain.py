"""Plain lists: one IP, CIDR, domain or URL a line, ``#`` comments, optional second column.

The second column of IPsum (``ip<TAB>count``) is how many blocklists name the address; it becomes
the confidence (20 + 10 per list, capped at 100: one list is weak evidence, eight are strong).
The object id is the entry itself, so a re-import of an updated list keeps the ids of the entries
that stayed.
"""

from __future__ import annotations

from pathlib import Path

from mamori.intel.schema import ImportResult, Indicator, IntelFormatError, normalise


def classify(entry: str) -> tuple[str, str] | None:
    """(type, normalised value) of a list entry: address, range, URL or domain."""
    found = normalise("ip", entry)
    if found:
        return found
    if "/" in entry or "://" in entry:
        return normalise("url", entry)
    return normalise("domain", entry)


def load(path: Path, default_tlp: str) -> ImportResult:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IntelFormatError(f"{path}: cannot read: {exc}") from exc
    result = ImportResult(Path(path), "list", [])
    for lineno, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        fields = body.split()
        if "\x00" in body:
            raise IntelFormatError(f"{path}:{lineno}: binary data, not a list")
        found = classify(fields[0])
        if found is None:
            result.skipped.append(
                (f"line {lineno}", f"{fields[0]!r} is not an IP, CIDR, domain or URL")
            )
            continue
        confidence = None
        if len(fields) > 1 and fields[1].isascii() and fields[1].isdigit():
            confidence = min(100, 20 + 10 * int(fields[1]))
        result.indicators.append(
            Indicator(
                type=found[0],
                value=found[1],
                object_id=found[1],
                tlp=default_tlp,
                confidence=confidence,
            )
        )
    if not result.indicators and result.skipped:
        raise IntelFormatError(
            f"{path}: no line is an IP, CIDR, domain or URL (first: {result.skipped[0][1]})"
        )
    return result
