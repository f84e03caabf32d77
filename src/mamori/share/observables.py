"""What of an incident is worth a partner's blocklist: the observables both exporters share.

Why one module for STIX and MISP: a partner who takes our STIX bundle and one who takes our MISP
event must get the same indicators, and the round-trip tests compare exactly this list.

Rules (documented in docs/sharing.md):
- an attacker address becomes an indicator only when it is globally routable (a private address
  means nothing on a partner's network and tells them about ours), unless asked otherwise;
- every domain the incident names becomes one;
- every observable an ``intel.match`` alert matched becomes one, carrying the TLP the intel came
  with (so exporting at TLP:CLEAR cannot lower a partner's AMBER indicator: :func:`tlp.effective`);
- victims never do: they are the user's own hosts.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mamori.intel.schema import normalise
from mamori.share.tlp import Tlp, TlpError, parse_tlp

# intel.match alert summary (mamori.detect.detectors.intel_match): the only place report.json
# names the matched observable and the TLP it came with.
_INTEL_SUMMARY = re.compile(
    r"^(?P<host>\S+) matched (?P<kind>[a-z0-9]+) indicator (?P<value>\S+) from (?P<source>.+?) "
    r"\(TLP:(?P<tlp>[A-Za-z+]+)"
)
KINDS = ("ip", "cidr", "domain", "url", "md5", "sha1", "sha256", "ja3", "ja3s", "ja4")


@dataclass(frozen=True, slots=True, order=True)
class Observable:
    """One thing to look for: ``kind`` as the intel table names it, ``value`` normalised."""

    kind: str
    value: str
    role: str  # "attacker", "domain" or "intel"
    tlp: Tlp | None = None  # the TLP it came with, when it came from intel
    source: str | None = None  # the intel feed it came from

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.value)


def _is_public(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_global
    except ValueError:
        return False


def intel_matches(alert: Mapping[str, Any]) -> Observable | None:
    """The observable an ``intel.match`` alert names, with its feed and TLP (None otherwise)."""
    if alert.get("detector") != "intel.match":
        return None
    m = _INTEL_SUMMARY.match(str(alert.get("summary") or ""))
    if not m or m["kind"] not in KINDS:
        return None
    norm = normalise(m["kind"], m["value"])
    if norm is None:
        return None
    try:
        tlp: Tlp | None = parse_tlp(m["tlp"])
    except TlpError:
        tlp = Tlp.RED  # an unreadable marking is treated as the strictest, never as none
    return Observable(norm[0], norm[1], "intel", tlp, m["source"])


def incident_observables(
    incident: Mapping[str, Any], *, private_addresses: bool = False
) -> list[Observable]:
    """The incident's observables, one per (kind, value), sorted; intel's TLP kept (strictest
    wins when the same value arrives from several places)."""
    found: dict[tuple[str, str], Observable] = {}

    def add(obs: Observable) -> None:
        old = found.get(obs.key)
        if old is None or (obs.tlp is not None and (old.tlp is None or obs.tlp > old.tlp)):
            found[obs.key] = obs

    for alert in incident.get("alerts") or []:
        if (obs := intel_matches(alert)) is not None:
            add(obs)
    entities = incident.get("entities") or {}
    for addr in entities.get("attackers") or []:
        norm = normalise("ip", str(addr))
        if norm and (private_addresses or _is_public(norm[1])):
            add(Observable(norm[0], norm[1], "attacker"))
    for name in entities.get("domains") or []:
        norm = normalise("domain", str(name))
        if norm:
            add(Observable(norm[0], norm[1], "domain"))
    return sorted(found.values())
