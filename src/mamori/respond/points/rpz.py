"""DNS Response Policy Zone: the user's resolver answers blocked names NXDOMAIN or the sinkhole.

RPZ (draft-vixie-dnsop-dns-rpz) is a zone any RPZ resolver loads (unbound ``rpz:``, BIND
``response-policy``, Knot, PowerDNS): ``name CNAME .`` means NXDOMAIN, ``name A <addr>`` rewrites
the answer, ``name CNAME rpz-passthru.`` exempts a name. Each decision also covers the name's
subdomains (``*.name``), since malware rotates hostnames under one registered domain.

The zone file is its own state: every record carries its decision's id and expiry in a comment, so
``apply`` from any process rewrites the file exactly (dropping what expired), raises the SOA serial
and asks the resolver to reload.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mamori.respond.decision import Action, Decision, enforcement_point
from mamori.respond.points.targets import PointError, domain, write_atomic

_SERIAL = re.compile(r"^@\s+\S+\s+IN\s+SOA\s+\S+\s+\S+\s+(\d+)\b", re.M)
_OWNED = re.compile(r"^(\S+)\s+IN\s+(CNAME|A|AAAA)\s+(\S+)\s+;\s+(\S.*)$")


@dataclass(frozen=True)
class Entry:
    name: str  # relative to the zone: "evil.example" or "*.evil.example"
    rtype: str
    data: str
    owner: str
    expires: datetime


@enforcement_point("rpz")
class RpzPoint:
    """One RPZ zone. ``block_domain`` answers NXDOMAIN; ``sinkhole`` answers ``sinkhole4`` /
    ``sinkhole6`` (an address the user owns and watches); ``passthru`` names are never rewritten."""

    name = "rpz"
    actions = frozenset({Action.block_domain, Action.sinkhole})

    def __init__(
        self,
        zone: str = "rpz.mamori.",
        path: str | Path | None = None,
        sinkhole4: str | None = None,
        sinkhole6: str | None = None,
        passthru: Sequence[str] = (),
        reload: Sequence[str] | None = None,
        ttl: int = 60,
    ) -> None:
        self.zone = zone if zone.endswith(".") else zone + "."
        self.path = Path(path) if path is not None else None
        for label, addr, version in (("sinkhole4", sinkhole4, 4), ("sinkhole6", sinkhole6, 6)):
            if addr is not None and ipaddress.ip_address(addr).version != version:
                raise PointError(f"rpz: {label} {addr!r} is not an IPv{version} address")
        self.sinkhole4 = sinkhole4
        self.sinkhole6 = sinkhole6
        self.passthru = [domain(Decision(Action.block_domain, n, "", "", 1.0, 1)) for n in passthru]
        self.reload = list(reload) if reload else None
        self.ttl = ttl
        self._serial = 0

    def render(self, active: Sequence[Decision], now: datetime) -> str:
        entries = [e for d in active if d.action in self.actions for e in self._entries(d)]
        return self._zone(entries, now)

    def apply(self, added: Sequence[Decision], removed: Sequence[Decision]) -> None:
        if self.path is None:
            raise PointError("rpz: apply needs the zone file's path")
        now = datetime.now(UTC)
        text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        found = _SERIAL.search(text)
        if found:
            self._serial = max(self._serial, int(found.group(1)))
        gone = {d.id for d in removed}
        entries = {
            (e.name, e.rtype, e.owner): e
            for e in _parse(text, self.path)
            if e.owner not in gone and e.expires > now
        }
        for d in added:
            if d.action in self.actions:
                entries.update({(e.name, e.rtype, e.owner): e for e in self._entries(d)})
        write_atomic(self.path, self._zone(list(entries.values()), now))
        if self.reload:
            proc = subprocess.run(self.reload, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise PointError(
                    f"rpz: reload command {' '.join(self.reload)!r} failed: "
                    f"{(proc.stderr or proc.stdout).strip()}"
                )

    def _entries(self, d: Decision) -> list[Entry]:
        name = domain(d)
        if d.action is Action.block_domain:
            answers = [("CNAME", ".")]
        else:
            answers = [("A", a) for a in [self.sinkhole4] if a]
            answers += [("AAAA", a) for a in [self.sinkhole6] if a]
            if not answers:
                raise PointError(f"rpz: decision {d.id} sinkholes {name} but no sinkhole is set")
        return [
            Entry(owner_name, rtype, data, d.id, d.expires)
            for owner_name in (name, f"*.{name}")
            for rtype, data in answers
        ]

    def _zone(self, entries: Sequence[Entry], now: datetime) -> str:
        self._serial = max(int(now.timestamp()), self._serial + 1)
        live = sorted(
            (e for e in entries if e.expires > now), key=lambda e: (e.name, e.rtype, e.owner)
        )
        # A name with CNAME must not carry other types; the NXDOMAIN rule, the stronger, wins.
        nx = {e.name for e in live if e.rtype == "CNAME"}
        live = [e for e in live if e.rtype == "CNAME" or e.name not in nx]
        exempt = set(self.passthru)
        lines = [
            f"; mamori response policy zone, written {now.isoformat()}",
            f"$ORIGIN {self.zone}",
            f"$TTL {self.ttl}",
            f"@ {self.ttl} IN SOA localhost. hostmaster.localhost. "
            f"{self._serial} 300 60 86400 {self.ttl}",
            "@ IN NS localhost.",
        ]
        for name in self.passthru:
            lines.append(f"{name} IN CNAME rpz-passthru.")
        # One record per rule; its comment names every decision holding it (``id@expiry``), so
        # removing one decision keeps the rule while another still holds it.
        rules: dict[tuple[str, str, str], list[Entry]] = {}
        for e in live:
            if e.name.removeprefix("*.") not in exempt:
                rules.setdefault((e.name, e.rtype, e.data), []).append(e)
        for (name, rtype, data), holders in rules.items():
            owners = " ".join(f"{h.owner}@{h.expires.isoformat()}" for h in holders)
            lines.append(f"{name} IN {rtype} {data} ; {owners}")
        return "\n".join(lines) + "\n"


def _parse(text: str, path: Path) -> list[Entry]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        m = _OWNED.match(line)
        if not m:
            continue
        for holder in m.group(4).split():
            owner, _, stamp = holder.partition("@")
            try:
                expires = datetime.fromisoformat(stamp)
            except ValueError as exc:
                raise PointError(f"rpz: {path}:{number}: bad decision stamp {holder!r}") from exc
            entries.append(Entry(m.group(1), m.group(2), m.group(3), owner, expires))
    return entries
