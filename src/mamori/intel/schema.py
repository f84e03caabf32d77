"""The ``indicators`` table: one row per (source object, observable), with its provenance.

Why one row per observable rather than per STIX indicator: a pattern ``[a OR b OR c]`` is three
things to look for, and matching joins on the observable; the STIX id stays in ``object_id`` so an
alert still names the indicator an analyst can look up. Why deterministic ids: re-importing the same
feed must replace its rows, not double them (``id`` = hash of source, object id, type, value, port).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa

# Observable kinds the matcher understands. Hashes are kept (for a later files table) but nothing in
# the lake carries file hashes yet.
TYPES: tuple[str, ...] = (
    "ip", "cidr", "domain", "url", "md5", "sha1", "sha256", "ja3", "ja3s", "ja4",
)  # fmt: skip
TLPS: tuple[str, ...] = ("clear", "green", "amber", "amber+strict", "red")

SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),  # normalised (see normalise())
        pa.field("port", pa.uint16()),  # network-traffic dst_port constraint, if any
        pa.field("source", pa.string(), nullable=False),  # feed name (``--source``, else file stem)
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("object_id", pa.string(), nullable=False),  # STIX id / MISP attribute uuid / line
        pa.field("name", pa.string()),  # indicator name or MISP event info
        pa.field("tlp", pa.string(), nullable=False),
        pa.field("confidence", pa.uint8(), nullable=False),  # 0-100
        pa.field("to_ids", pa.bool_(), nullable=False),  # MISP: meant for detection
        pa.field("valid_from", pa.timestamp("us", tz="UTC")),
        pa.field("valid_until", pa.timestamp("us", tz="UTC")),
        pa.field("kill_chain_phases", pa.list_(pa.string())),  # "chain:phase"
        pa.field("labels", pa.list_(pa.string())),  # indicator_types / MISP category and tags
        # What the source says the indicator indicates: "type--id|name" of intrusion sets, threat
        # actors, malware, tools, campaigns (STIX relationships / MISP galaxies), for attribution.
        pa.field("related", pa.list_(pa.string())),
        pa.field("imported", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

DEFAULT_CONFIDENCE = 50  # STIX 2.1 leaves it unset; "medium" on its own none/low/med/high scale


def default_store() -> Path:
    """Where intel lives unless ``--store`` says otherwise (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mamori" / "intel"


class IntelFormatError(ValueError):
    """A feed that cannot be imported; the message names the file and the reason."""


@dataclass
class Indicator:
    type: str
    value: str
    object_id: str
    port: int | None = None
    name: str | None = None
    tlp: str | None = None
    confidence: int | None = None
    to_ids: bool = True
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    kill_chain_phases: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    related: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    """What one file gave: indicators, and what was skipped with why (never silently dropped)."""

    path: Path
    format: str
    indicators: list[Indicator]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (object id, reason)


_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def normalise_domain(text: str) -> str | None:
    """Lower case, no root dot, IDNA (punycode) for non-ASCII; None when it is not a host name
    of at least two labels."""
    name = text.strip().rstrip(".").lower()
    if not name or any(c.isspace() for c in name):
        return None
    try:
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        return None
    labels = name.split(".")
    # A bare label ("com", "local") would, with parent matching, flag a whole TLD: not a host.
    if len(labels) < 2 or len(name) > 253 or not all(_LABEL.match(lb) for lb in labels):
        return None
    return name


def normalise_ip(text: str) -> tuple[str, str] | None:
    """("ip", canonical) for an address, ("cidr", network) for a range, None when neither.

    A /32 (/128) is an address: exact matching is a join, cheaper than the interval index.
    """
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    if net.prefixlen == net.max_prefixlen:
        return "ip", str(net.network_address)
    return "cidr", str(net)


def normalise_url(text: str) -> str | None:
    """``host[:port]/path[?query]``: scheme, fragment, user info and default ports dropped.

    Why: http.log has ``host`` and ``uri`` but no scheme, so the join key must not carry one.
    """
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not host:
        return None
    host = host.lower().rstrip(".")
    if port and not (
        (parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)
    ):
        host = f"{host}:{port}"
    path = parts.path or "/"
    return host + path + (f"?{parts.query}" if parts.query else "")


_HEX = {"md5": 32, "sha1": 40, "sha256": 64, "ja3": 32, "ja3s": 32}
_JA4 = re.compile(r"^[tqd][0-9a-z]{2}[di][0-9]{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$")


def normalise(kind: str, text: str) -> tuple[str, str] | None:
    """(type, normalised value) for a raw observable of a kind, or None when it is not valid."""
    if kind in ("ip", "cidr"):
        return normalise_ip(text)
    if kind == "domain":
        value = normalise_domain(text)
        return ("domain", value) if value else None
    if kind == "url":
        value = normalise_url(text)
        return ("url", value) if value else None
    if kind in _HEX:
        value = text.strip().lower()
        if len(value) == _HEX[kind] and all(c in "0123456789abcdef" for c in value):
            return kind, value
        return None
    if kind == "ja4":
        value = text.strip().lower()
        return ("ja4", value) if _JA4.match(value) else None
    raise ValueError(f"unknown observable kind {kind!r}")


def indicator_id(source: str, object_id: str, type_: str, value: str, port: int | None) -> str:
    """Deterministic id: the same observable of the same object from the same source is one row."""
    key = "\x1f".join((source, object_id, type_, value, "" if port is None else str(port)))
    return hashlib.sha256(key.encode()).hexdigest()[:32]
