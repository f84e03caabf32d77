"""ExaBGP: remote-triggered blackhole and flowspec announcements for the user's own routers.

A blocked address is announced as a host route tagged BLACKHOLE (RFC 7999, community 65535:666,
plus no-export so it never leaves the user's AS) towards a discard next-hop, and, when the routers
speak flowspec (RFC 8955), as a flow rule matching the source: ``discard`` for a block,
``rate-limit`` (bytes per second) for policing. BGP has no expiry of its own: mamori's expiry
withdraws the announcement.

``render`` writes a whole ExaBGP configuration (neighbor, static routes, flows and, if an API file
is set, a process relaying it); ``commands`` turns deltas into API text commands
(``announce route ...`` / ``withdraw flow route ...``) and ``apply`` appends them to the API file.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from mamori.respond.decision import Action, Decision, enforcement_point
from mamori.respond.points.targets import Network, PointError, network

BLACKHOLE = "65535:666"  # RFC 7999


@enforcement_point("exabgp")
class ExabgpPoint:
    """Announcements to one BGP neighbor (the user's route reflector or edge router)."""

    name = "exabgp"
    actions = frozenset({Action.block_ip, Action.rate_limit})

    def __init__(
        self,
        neighbor: str = "192.0.2.254",
        local_address: str = "192.0.2.253",
        local_as: int = 64512,
        peer_as: int = 64512,
        router_id: str | None = None,
        next_hop4: str = "192.0.2.1",
        next_hop6: str = "100::1",
        blackhole: bool = True,
        flowspec: bool = True,
        rate_bytes: int = 12_500,
        api: str | Path | None = None,
    ) -> None:
        for label, value in (
            ("neighbor", neighbor),
            ("local_address", local_address),
            ("next_hop4", next_hop4),
            ("next_hop6", next_hop6),
        ):
            try:
                ipaddress.ip_address(value)
            except ValueError as exc:
                raise PointError(f"exabgp: {label} {value!r} is not an IP address") from exc
        for label, asn in (("local_as", local_as), ("peer_as", peer_as)):
            if not 0 < asn < 2**32:
                raise PointError(f"exabgp: {label} {asn} is not an AS number")
        if rate_bytes < 0:
            raise PointError("exabgp: rate_bytes must be at least 0")
        self.neighbor = neighbor
        self.local_address = local_address
        self.local_as = local_as
        self.peer_as = peer_as
        self.router_id = router_id or (local_address if ":" not in local_address else "192.0.2.253")
        self.next_hop4 = next_hop4
        self.next_hop6 = next_hop6
        self.blackhole = blackhole
        self.flowspec = flowspec
        self.rate_bytes = rate_bytes
        self.api = Path(api) if api is not None else None

    # -- announcements -----------------------------------------------------------------------

    def _route(self, net: Network) -> str:
        hop = self.next_hop4 if net.version == 4 else self.next_hop6
        return f"{net} next-hop {hop} community [{BLACKHOLE} no-export]"

    def _flow(self, d: Decision, net: Network) -> tuple[str, str]:
        then = "discard" if d.action is Action.block_ip else f"rate-limit {self.rate_bytes}"
        return f"source {net}", then

    def _parts(self, d: Decision) -> tuple[list[str], list[tuple[str, str]]]:
        if d.action not in self.actions:
            return [], []
        net = network(d)
        routes = [self._route(net)] if self.blackhole and d.action is Action.block_ip else []
        flows = [self._flow(d, net)] if self.flowspec else []
        return routes, flows

    def commands(self, added: Sequence[Decision], removed: Sequence[Decision]) -> list[str]:
        """ExaBGP API text commands: withdrawals first, so a re-added target ends up announced."""
        out: list[str] = []
        for verb, decisions in (("withdraw", removed), ("announce", added)):
            for d in decisions:
                routes, flows = self._parts(d)
                out += [f"{verb} route {r}" for r in routes]
                out += [
                    f"{verb} flow route {{ match {{ {m}; }} then {{ {t}; }} }}" for m, t in flows
                ]
        return out

    # -- the contract ------------------------------------------------------------------------

    def render(self, active: Sequence[Decision], now: datetime) -> str:
        live = [d for d in active if d.action in self.actions and d.expires > now]
        routes: dict[str, None] = {}
        flows: dict[tuple[str, str], str] = {}
        for d in sorted(live, key=lambda d: d.id):
            r, f = self._parts(d)
            routes.update(dict.fromkeys(r))
            for rule in f:
                flows.setdefault(rule, d.id)
        families = ["ipv4 unicast", "ipv6 unicast"] + (
            ["ipv4 flow", "ipv6 flow"] if self.flowspec else []
        )
        lines = [f"# mamori announcements, written {now.isoformat()}"]
        if self.api is not None:
            lines += [
                "process mamori {",
                f"    run /usr/bin/tail -n 0 -F {self.api};",
                "    encoder text;",
                "}",
            ]
        lines += [
            f"neighbor {self.neighbor} {{",
            f"    router-id {self.router_id};",
            f"    local-address {self.local_address};",
            f"    local-as {self.local_as};",
            f"    peer-as {self.peer_as};",
            "    family {",
            *(f"        {f};" for f in families),
            "    }",
        ]
        if self.api is not None:
            lines.append("    api { processes [ mamori ]; }")
        if routes:
            lines.append("    static {")
            lines += [f"        route {r};" for r in routes]
            lines.append("    }")
        if flows:
            lines.append("    flow {")
            for (match, then), owner in flows.items():
                lines += [
                    f"        route {owner}-{'drop' if then == 'discard' else 'police'} {{",
                    f"            match {{ {match}; }}",
                    f"            then {{ {then}; }}",
                    "        }",
                ]
            lines.append("    }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def apply(self, added: Sequence[Decision], removed: Sequence[Decision]) -> None:
        """Append the commands to the API file ExaBGP's process relays (one write, O_APPEND, so
        concurrent writers never interleave within a batch)."""
        if self.api is None:
            raise PointError("exabgp: apply needs the API file (the `api` setting)")
        lines = self.commands(added, removed)
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode()
        fd = os.open(self.api, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
