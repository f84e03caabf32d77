"""nftables: the user's Linux firewall drops blocked addresses from sets the kernel expires itself.

Each enforced decision becomes an element of an interval set with a timeout, so a block ends at its
expiry even if mamori is not running to remove it. ``render`` is a whole ``nft -f`` script that
replaces the table in one transaction; ``apply`` adds and deletes only the elements that changed.
Overlapping decisions (a /24 and a /32 inside it) are laid out as disjoint pieces, since the kernel
refuses overlapping intervals (see ``targets.partition``).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import subprocess
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from mamori.respond.decision import Action, Decision, enforcement_point
from mamori.respond.points.targets import Piece, PointError, cidr_text, parse_cidr, partition_ints

# Which set each action fills, per address family.
_SETS: dict[Action, str] = {
    Action.block_ip: "block",
    Action.rate_limit: "limit",
    Action.quarantine: "quarantine",
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_RATE = re.compile(r"^\d+/(second|minute|hour|day)$")


@enforcement_point("nftables")
class NftablesPoint:
    """Sets ``block4/6`` (dropped both ways), ``limit4/6`` (policed per source address) and
    ``quarantine4/6`` (internal hosts cut off from forwarding) in table ``inet <table>``."""

    name = "nftables"
    actions = frozenset(_SETS)

    def __init__(
        self,
        table: str = "mamori",
        namespace: str | None = None,
        rate: str = "50/second",
        burst: int = 100,
        nft: str = "nft",
    ) -> None:
        if not _NAME.match(table):
            raise PointError(f"nftables: table name {table!r} must be a short identifier")
        if not _RATE.match(rate):
            raise PointError(f"nftables: rate {rate!r} must look like 50/second")
        self.table = table
        self.namespace = namespace
        self.rate = rate
        self.burst = burst
        self.nft = nft
        # What this process believes is enforced: key -> (set, (version, first, length), expiry,
        # owning decision). None until the table is loaded here or read back from the kernel.
        self._entries: dict[str, tuple[str, tuple[int, int, int], datetime, str]] | None = None
        self._present: dict[str, dict[str, Piece]] | None = None  # what the kernel holds

    # -- the full state -------------------------------------------------------------------------

    def render(self, active: Sequence[Decision], now: datetime) -> str:
        """The whole table as an ``nft -f`` script: create-then-delete-then-define, so loading it
        replaces an older table atomically and works on a host that has none yet."""
        pieces = self._layout(active, now)
        t = self.table
        out = [f"table inet {t}", f"delete table inet {t}", f"table inet {t} {{"]
        for set_name, family in _all_sets():
            kind = "ipv4_addr" if family == 4 else "ipv6_addr"
            elements = [_element(p, now) for p in pieces.get(set_name, []) if p.expires > now]
            out.append(f"\tset {set_name} {{")
            out.append(f"\t\ttype {kind}")
            out.append("\t\tflags interval, timeout")
            if elements:
                out.append("\t\telements = { " + ", ".join(elements) + " }")
            out.append("\t}")
        for family in (4, 6):
            kind = "ipv4_addr" if family == 4 else "ipv6_addr"
            out.append(f"\tset meter{family} {{")
            out.append(f"\t\ttype {kind}; flags dynamic, timeout; timeout 1m;")
            out.append("\t}")
        out.extend(self._chains())
        out.append("}")
        return "\n".join(out) + "\n"

    def load(self, active: Sequence[Decision], now: datetime | None = None) -> None:
        """Replace the table in the kernel with ``render``'s script and remember what is in it."""
        now = now or datetime.now(UTC)
        self._run(self.render(active, now))
        self._entries = {d.id: self._entry(d) for d in active if d.action in _SETS}
        pieces = self._layout(active, now)
        self._present = {name: {p.net: p for p in pieces.get(name, [])} for name, _ in _all_sets()}

    # -- deltas ---------------------------------------------------------------------------------

    def apply(self, added: Sequence[Decision], removed: Sequence[Decision]) -> None:
        """Add and delete only the elements that changed, in one transaction.

        A process that did not load the table learns its elements (and which decision owns each,
        from the element's comment) from the kernel first; after that it keeps its own picture of
        the kernel's sets, and reads them again only if nft refuses a change (someone else
        edited the table)."""
        now = datetime.now(UTC)
        if self._entries is None or self._present is None:
            self._present = self._read_kernel(now)
        if self._entries is None:
            self._entries = {
                f"{p.owner}@{key}": (set_name, _triple(p.net), p.expires, p.owner)
                for set_name, pieces in self._present.items()
                for key, p in pieces.items()
            }
        gone = {d.id for d in removed}
        if gone:
            self._entries = {k: e for k, e in self._entries.items() if e[3] not in gone}
        for d in added:
            if d.action in _SETS:
                self._entries[d.id] = self._entry(d)
        pieces = _layout(self._entries.values(), now)
        want = {name: {p.net: p for p in pieces.get(name, [])} for name, _ in _all_sets()}
        try:
            self._run(self._delta(self._present, want, now))
        except PointError:
            self._present = self._read_kernel(now)
            self._run(self._delta(self._present, want, now))
        self._present = want

    def _delta(
        self, present: dict[str, dict[str, Piece]], want: dict[str, dict[str, Piece]], now: datetime
    ) -> str:
        """The nft script turning ``present`` into ``want``. Elements the kernel has already timed
        out are not deleted (that would fail). Deleting many elements of an interval set one by one
        is slow in the kernel, so a large removal flushes the set and adds back what stays, in the
        same transaction (no moment without the set)."""
        soon = now + timedelta(seconds=1)
        lines: list[str] = []
        for set_name, wanted in want.items():
            have = {k: p for k, p in present.get(set_name, {}).items() if p.expires > soon}
            stale = [
                k
                for k, p in have.items()
                if k not in wanted or wanted[k].expires < p.expires - timedelta(seconds=1)
            ]
            head = f"inet {self.table} {set_name}"
            # nft 1.0 deletes interval elements one at a time at a cost that grows with the set
            # (1.6 ms each in a 2,000 element set, tens of ms in a 20,000 one), while a refill costs
            # well under a millisecond per element whatever the size: beyond a few dozen deletions
            # the refill wins (benchmarks/README.md, "Enforcement points").
            if len(stale) > 32:
                lines.append(f"flush set {head}")
                fresh = [_element(p, now) for p in wanted.values()]
            else:
                if stale:
                    lines.append(f"delete element {head} {{ " + ", ".join(stale) + " }")
                stale_set = set(stale)
                fresh = [
                    _element(p, now)
                    for k, p in wanted.items()
                    if k not in have
                    or k in stale_set
                    or abs((p.expires - have[k].expires).total_seconds()) > 1
                    or p.owner != have[k].owner
                ]
            if fresh:
                lines.append(f"add element {head} {{ " + ", ".join(fresh) + " }")
        return "\n".join(lines) + "\n" if lines else ""

    # -- helpers --------------------------------------------------------------------------------

    def _entry(self, d: Decision) -> tuple[str, tuple[int, int, int], datetime, str]:
        version, lo, plen = parse_cidr(d)
        return (f"{_SETS[d.action]}{version}", (version, lo, plen), d.expires, d.id)

    def _layout(self, active: Sequence[Decision], now: datetime) -> dict[str, list[Piece]]:
        return _layout((self._entry(d) for d in active if d.action in _SETS), now)

    def _chains(self) -> list[str]:
        limit = f"limit rate over {self.rate} burst {self.burst} packets"
        police = [
            f"\t\tip saddr @limit4 update @meter4 {{ ip saddr {limit} }} counter drop",
            f"\t\tip6 saddr @limit6 update @meter6 {{ ip6 saddr {limit} }} counter drop",
        ]
        chain = (
            "\tchain {name} {{\n\t\ttype filter hook {name} priority filter - 10; policy accept;"
        )
        return [
            chain.format(name="input"),
            "\t\tip saddr @block4 counter drop",
            "\t\tip6 saddr @block6 counter drop",
            *police,
            "\t}",
            chain.format(name="forward"),
            "\t\tip saddr @block4 counter drop",
            "\t\tip daddr @block4 counter drop",
            "\t\tip6 saddr @block6 counter drop",
            "\t\tip6 daddr @block6 counter drop",
            "\t\tip saddr @quarantine4 counter drop",
            "\t\tip daddr @quarantine4 counter drop",
            "\t\tip6 saddr @quarantine6 counter drop",
            "\t\tip6 daddr @quarantine6 counter drop",
            *police,
            "\t}",
            chain.format(name="output"),
            "\t\tip daddr @block4 counter drop",
            "\t\tip6 daddr @block6 counter drop",
            "\t}",
        ]

    def _command(self, *args: str) -> list[str]:
        prefix = ["ip", "netns", "exec", self.namespace] if self.namespace else []
        return [*prefix, self.nft, *args]

    def _run(self, script: str) -> None:
        if not script:
            return
        try:
            proc = subprocess.run(
                self._command("-f", "-"), input=script, capture_output=True, text=True, check=False
            )
        except FileNotFoundError as exc:
            raise PointError(f"nftables: {exc.filename} not found (install nftables)") from exc
        if proc.returncode != 0:
            raise PointError(f"nftables: nft refused the change: {proc.stderr.strip()}")

    def _read_kernel(self, now: datetime) -> dict[str, dict[str, Piece]]:
        """The elements now in the kernel with their remaining time and owning decision."""
        proc = subprocess.run(
            self._command("-j", "list", "table", "inet", self.table),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise PointError(
                f"nftables: table inet {self.table} is not loaded (run load/render first): "
                f"{proc.stderr.strip()}"
            )
        found: dict[str, dict[str, Piece]] = {}
        for item in json.loads(proc.stdout).get("nftables", []):
            s = item.get("set")
            if not s or s.get("table") != self.table or s["name"].startswith("meter"):
                continue
            pieces = found.setdefault(s["name"], {})
            for el in s.get("elem", []):
                piece = _parse_elem(el, now)
                if piece is not None:
                    pieces[str(piece.net)] = piece
        return found


def _all_sets() -> list[tuple[str, int]]:
    return [(f"{base}{family}", family) for base in _SETS.values() for family in (4, 6)]


def _element(p: Piece, now: datetime) -> str:
    seconds = max(1, math.ceil((p.expires - now).total_seconds()))
    return f'{p.net} timeout {seconds}s comment "{p.owner}"'


def _parse_elem(el: object, now: datetime) -> Piece | None:
    if not isinstance(el, dict) or "elem" not in el:
        return None
    body = el["elem"]
    val = body.get("val")
    if isinstance(val, dict) and "prefix" in val:
        net = ipaddress.ip_network(f"{val['prefix']['addr']}/{val['prefix']['len']}")
    elif isinstance(val, str):
        net = ipaddress.ip_network(val)
    else:
        return None
    expires = now + timedelta(seconds=float(body.get("expires", body.get("timeout", 0))))
    text = cidr_text(net.version, int(net.network_address), net.prefixlen)
    return Piece(text, expires, str(body.get("comment", "")))


def _triple(text: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(text)
    return net.version, int(net.network_address), net.prefixlen


def _layout(
    entries: Iterable[tuple[str, tuple[int, int, int], datetime, str]], now: datetime
) -> dict[str, list[Piece]]:
    grouped: dict[str, list[tuple[int, int, int, datetime, str]]] = {}
    for set_name, (version, lo, plen), expires, owner in entries:
        if expires > now:
            grouped.setdefault(set_name, []).append((version, lo, plen, expires, owner))
    return {name: partition_ints(items) for name, items in grouped.items()}
