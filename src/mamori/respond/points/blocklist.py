"""Plain blocklist files for firewalls and proxies that pull lists (pfSense/OPNsense URL tables,
FortiGate external threat feeds, MikroTik, Squid): one IP/CIDR or one domain per line, nothing else.

A pulling device cannot tell a half-written file from a short one, so each file is replaced in one
rename. The list holds no expiries, so the decisions behind it live in a small JSON file beside it
(``<list>.state.json``); ``apply`` from any process reads that, drops what expired and rewrites both.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from mamori.respond.decision import Action, Decision, enforcement_point
from mamori.respond.points.targets import PointError, domain, network, write_atomic


class _ListPoint:
    name: str
    actions: frozenset[Action]

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None

    def _key(self, d: Decision) -> str:
        raise NotImplementedError

    def _lines(self, keys: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def render(self, active: Sequence[Decision], now: datetime) -> str:
        keys = [self._key(d) for d in active if d.action in self.actions and d.expires > now]
        return "".join(f"{line}\n" for line in self._lines(keys))

    @property
    def state_path(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".state.json")

    def apply(self, added: Sequence[Decision], removed: Sequence[Decision]) -> None:
        if self.path is None:
            raise PointError(f"{self.name}: apply needs the list file's path")
        now = datetime.now(UTC)
        held: dict[str, dict[str, str]] = {}
        if self.state_path.exists():
            try:
                held = json.loads(self.state_path.read_text(encoding="utf-8"))["decisions"]
                for item in held.values():
                    item["expires"] = str(datetime.fromisoformat(item["expires"]).isoformat())
            except (ValueError, KeyError, TypeError) as exc:
                raise PointError(
                    f"{self.name}: {self.state_path}: unreadable state: {exc}"
                ) from exc
        for d in removed:
            held.pop(d.id, None)
        for d in added:
            if d.action in self.actions:
                held[d.id] = {"key": self._key(d), "expires": d.expires.isoformat()}
        held = {k: v for k, v in held.items() if datetime.fromisoformat(v["expires"]) > now}
        text = "".join(f"{line}\n" for line in self._lines([v["key"] for v in held.values()]))
        write_atomic(self.state_path, json.dumps({"decisions": held}, indent=1, sort_keys=True))
        write_atomic(self.path, text)


@enforcement_point("blocklist-ip")
class IpBlocklist(_ListPoint):
    """Blocked addresses and networks, overlaps merged (a /32 inside a blocked /24 is not listed)."""

    name = "blocklist-ip"
    actions = frozenset({Action.block_ip})

    def _key(self, d: Decision) -> str:
        return str(network(d))

    def _lines(self, keys: Sequence[str]) -> list[str]:
        nets = [ipaddress.ip_network(k) for k in keys]
        out: list[str] = []
        for version in (4, 6):
            family = [n for n in nets if n.version == version]
            for n in ipaddress.collapse_addresses(family):  # type: ignore[type-var]
                single = n.num_addresses == 1
                out.append(str(n.network_address) if single else str(n))
        return out


@enforcement_point("blocklist-domain")
class DomainBlocklist(_ListPoint):
    """Blocked and sinkholed domains, lower case, sorted, one each."""

    name = "blocklist-domain"
    actions = frozenset({Action.block_domain, Action.sinkhole})

    def _key(self, d: Decision) -> str:
        return domain(d)

    def _lines(self, keys: Sequence[str]) -> list[str]:
        return sorted(set(keys))
