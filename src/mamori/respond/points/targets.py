"""What enforcement points share: reading a decision's target and laying overlapping blocks out.

Firewalls refuse overlapping intervals in one set (nftables answers "interval overlaps with an
existing one"), yet a /24 block and a /32 block inside it are both legitimate decisions with their
own expiries. ``partition`` turns any set of (network, expiry) pairs into disjoint pieces, each
expiring when the last decision covering it does, so every address stays blocked exactly as long
as some decision says so and no longer.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mamori.respond.decision import Decision

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 1035 labels, letters/digits/hyphen/underscore (underscore appears in real service names).
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


class PointError(ValueError):
    """An enforcement point could not carry a decision; the message names the point and why."""


def network(decision: Decision) -> Network:
    """The decision's target as a network (a bare address is a /32 or /128)."""
    try:
        return ipaddress.ip_network(decision.target.strip(), strict=False)
    except ValueError as exc:
        raise PointError(
            f"decision {decision.id}: target {decision.target!r} is not an IP address or CIDR"
        ) from exc


def domain(decision: Decision) -> str:
    """The decision's target as a lower-case domain without the trailing dot."""
    name = decision.target.strip().lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise PointError(f"decision {decision.id}: target {decision.target!r} is an IP address, "
                         "not a domain name")  # fmt: skip
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise PointError(f"decision {decision.id}: target {decision.target!r} is not a domain name")
    return name


def parse_cidr(decision: Decision) -> tuple[int, int, int]:
    """(IP version, first address as an integer, prefix length) of an IP or CIDR target, host bits
    cleared. Thousands of decisions are laid out per apply, so this avoids ``ipaddress`` objects."""
    addr, slash, plen_text = decision.target.strip().partition("/")
    try:
        if ":" in addr:
            version, bits, raw = 6, 128, socket.inet_pton(socket.AF_INET6, addr)
        else:
            version, bits, raw = 4, 32, socket.inet_pton(socket.AF_INET, addr)
        if slash and not plen_text.isdigit():
            raise ValueError(plen_text)
        plen = int(plen_text) if slash else bits
        if plen > bits:
            raise ValueError(plen_text)
    except (OSError, ValueError) as exc:
        raise PointError(
            f"decision {decision.id}: target {decision.target!r} is not an IP address or CIDR"
        ) from exc
    value = int.from_bytes(raw, "big")
    return version, value >> (bits - plen) << (bits - plen), plen


def cidr_text(version: int, lo: int, plen: int) -> str:
    """The canonical spelling (``192.0.2.0/24``, ``2001:db8::/48``, hosts with /32 or /128)."""
    if version == 4:
        return f"{socket.inet_ntop(socket.AF_INET, lo.to_bytes(4, 'big'))}/{plen}"
    return f"{ipaddress.IPv6Address(lo)}/{plen}"


@dataclass(frozen=True)
class Piece:
    """One disjoint element: ``owner`` is the decision whose expiry it carries (the latest one)."""

    net: str  # canonical CIDR text, see ``cidr_text``
    expires: datetime
    owner: str


def _range_cidrs(lo: int, hi: int, bits: int) -> Iterator[tuple[int, int]]:
    """The fewest aligned prefixes covering the integers lo..hi: (first address, prefix length)."""
    while lo <= hi:
        align = (lo & -lo).bit_length() - 1 if lo else bits
        size = min(align, (hi - lo + 1).bit_length() - 1)
        yield lo, bits - size
        lo += 1 << size


def partition(items: Iterable[tuple[Network, datetime, str]]) -> list[Piece]:
    """``partition_ints`` for ``ipaddress`` networks."""
    return partition_ints(
        (n.version, int(n.network_address), n.prefixlen, e, o) for n, e, o in items
    )


def partition_ints(items: Iterable[tuple[int, int, int, datetime, str]]) -> list[Piece]:
    """Disjoint pieces covering the union of the prefixes ``(version, first, length, expires,
    owner)``; each address expires at the latest expiry of the prefixes covering it. Prefixes
    either nest or are disjoint, so a walk in address order with a stack of enclosing prefixes
    finds every nesting; a prefix minus its nested prefixes is cut into aligned blocks."""
    best: dict[tuple[int, int, int], tuple[datetime, str]] = {}
    for version, lo, plen, expires, owner in items:
        key = (version, lo, plen)
        old = best.get(key)
        if old is None or (expires, owner) > old:
            best[key] = (expires, owner)
    ordered = sorted(best)
    effective: dict[tuple[int, int, int], tuple[datetime, str]] = {}
    children: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    stack: list[tuple[int, int, int, tuple[int, int, int]]] = []  # version, lo, hi, key
    for key in ordered:
        version, lo, plen = key
        hi = lo + (1 << ((32 if version == 4 else 128) - plen)) - 1
        while stack and not (stack[-1][0] == version and stack[-1][1] <= lo and hi <= stack[-1][2]):
            stack.pop()
        own = best[key]
        if stack:
            parent = stack[-1][3]
            children.setdefault(parent, []).append((lo, hi))
            own = max(own, effective[parent])
        effective[key] = own
        stack.append((version, lo, hi, key))
    pieces: list[Piece] = []
    for key in ordered:
        version, lo, plen = key
        expires, owner = effective[key]
        inner = children.get(key)
        if not inner:
            pieces.append(Piece(cidr_text(version, lo, plen), expires, owner))
            continue
        bits = 32 if version == 4 else 128
        hi = lo + (1 << (bits - plen)) - 1
        cursor = lo
        for c_lo, c_hi in inner:  # direct children: disjoint, in address order
            for first, length in _range_cidrs(cursor, c_lo - 1, bits):
                pieces.append(Piece(cidr_text(version, first, length), expires, owner))
            cursor = c_hi + 1
        for first, length in _range_cidrs(cursor, hi, bits):
            pieces.append(Piece(cidr_text(version, first, length), expires, owner))
    return pieces


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` in one rename, so a firewall pulling the file never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
