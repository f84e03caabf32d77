"""The operator profile: who files the regulator's incident report, and what their systems are.

Why a file the user gives (``--operator FILE``, YAML or TOML) rather than settings: the details are
the operator's legal identity (name, sector, registration, the regulator they answer to, a contact
who can be called back), which nothing in mamori's data can know. A missing field is an error that
names the file and every missing field at once, so a report is never filed with a blank line.

Example (YAML)::

    operator:
      name: Stadtwerke Example GmbH
      sector: energy              # NIS2 Annex I sector
      identifier: DE-KRITIS-0042  # registration number with the regulator
      address: Hauptstr. 1, 12345 Example
    contact:
      name: Jane Doe
      role: CISO
      email: soc@example.org
      phone: "+49 30 1234567"
    regulator:
      name: Bundesamt für Sicherheit in der Informationstechnik (BSI)
    systems:                      # optional: names for the operator's address ranges
      - name: SCADA front-end
        addresses: [10.10.0.0/24]
        service: electricity distribution control
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mamori.cases.reports.view import ReportError

REQUIRED: tuple[str, ...] = (
    "operator.name",
    "operator.sector",
    "operator.identifier",
    "contact.name",
    "contact.email",
    "contact.phone",
    "regulator.name",
)


@dataclass(frozen=True)
class System:
    name: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    service: str | None = None

    def contains(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.networks)


@dataclass(frozen=True)
class OperatorProfile:
    path: str
    operator: dict[str, Any]
    contact: dict[str, Any]
    regulator: dict[str, Any]
    systems: tuple[System, ...] = field(default_factory=tuple)

    def system_of(self, address: str) -> System | None:
        return next((s for s in self.systems if s.contains(address)), None)


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such operator profile") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read the operator profile ({exc})") from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ReportError(
            f"{path}: not valid {path.suffix.lstrip('.').upper() or 'YAML'} ({exc})"
        ) from None


def _get(data: dict[str, Any], dotted: str) -> Any:
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def load_operator(path: Path) -> OperatorProfile:
    """Read and check a profile; every problem is named with the file in one ReportError."""
    data = _read(path)
    if not isinstance(data, dict):
        raise ReportError(
            f"{path}: an operator profile is a mapping (operator, contact, regulator)"
        )
    missing = [k for k in REQUIRED if not str(_get(data, k) or "").strip()]
    if missing:
        raise ReportError(f"{path}: operator profile is missing {', '.join(missing)}")
    systems = []
    for n, s in enumerate(data.get("systems") or []):
        where = f"{path}: systems[{n}]"
        if not isinstance(s, dict) or not str(s.get("name") or "").strip():
            raise ReportError(f"{where}: a system needs a name")
        nets = []
        for a in s.get("addresses") or []:
            try:
                nets.append(ipaddress.ip_network(str(a), strict=False))
            except ValueError:
                raise ReportError(f"{where}: {a!r} is not an address or network") from None
        systems.append(System(str(s["name"]), tuple(nets), s.get("service")))
    return OperatorProfile(
        path=str(path),
        operator=dict(data["operator"]),
        contact=dict(data["contact"]),
        regulator=dict(data["regulator"]),
        systems=tuple(systems),
    )
