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
import tempfile
from collections.abc import Iterable
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
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise PointError(f"decision {decision.id}: target {decision.target!r} is not a domain name")
    return name


@dataclass(frozen=True)
class Piece:
    """One disjoint element: ``owner`` is the decision whose expiry it carries (the latest one)."""

    net: Network
    expires: datetime
    owner: str


def partition(items: Iterable[tuple[Network, datetime, str]]) -> list[Piece]:
    """Disjoint pieces covering the union of ``items``; each address expires at the latest expiry
    of the items covering it. CIDR prefixes either nest or are disjoint, so a walk in address order
    with a stack of enclosing prefixes finds every nesting; a prefix minus its nested prefixes is
    then cut with ``address_exclude``."""
    best: dict[Network, tuple[datetime, str]] = {}
    for net, expires, owner in items:
        if net not in best or (expires, owner) > best[net]:
            best[net] = (expires, owner)
    ordered = sorted(best, key=lambda n: (n.version, int(n.network_address), n.prefixlen))
    effective: dict[Network, tuple[datetime, str]] = {}
    children: dict[Network, list[Network]] = {n: [] for n in ordered}
    stack: list[Network] = []
    for net in ordered:
        while stack and not (
            stack[-1].version == net.version and net.subnet_of(stack[-1])  # type: ignore[arg-type]
        ):
            stack.pop()
        own = best[net]
        if stack:
            parent = stack[-1]
            children[parent].append(net)
            own = max(own, effective[parent])
        effective[net] = own
        stack.append(net)
    pieces: list[Piece] = []
    for net in ordered:
        expires, owner = effective[net]
        rest: list[Network] = [net]
        for child in children[net]:
            cut: list[Network] = []
            for part in rest:
                if child.subnet_of(part):  # type: ignore[arg-type]
                    cut.extend(part.address_exclude(child))  # type: ignore[arg-type]
                else:
                    cut.append(part)
            rest = cut
        pieces.extend(Piece(part, expires, owner) for part in rest)
    return sorted(pieces, key=lambda p: (p.net.version, int(p.net.network_address)))


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
