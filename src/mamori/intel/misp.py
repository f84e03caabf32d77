"""MISP events (``{"Event": {...}}``, a bare event, a REST ``{"response": [...]}``) and feeds.

A MISP feed is a folder of event files with a ``manifest.json``; :func:`load` takes one file and
the CLI expands folders. Attributes come from the event and from its objects. ``to_ids`` is kept
as a column, not used as a filter: the detector decides (by default it matches only ``to_ids``
attributes, which is what MISP means by "for detection").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mamori.intel.common import read_json, tlp_name
from mamori.intel.schema import TLPS, ImportResult, Indicator, IntelFormatError, normalise

# MISP attribute type -> (observable kind, which part of a "a|b" value)
ATTRIBUTE_KINDS: dict[str, tuple[str, int]] = {
    "ip-src": ("ip", 0), "ip-dst": ("ip", 0), "ip-src|port": ("ip", 0), "ip-dst|port": ("ip", 0),
    "domain": ("domain", 0), "hostname": ("domain", 0), "domain|ip": ("domain", 0),
    "hostname|port": ("domain", 0), "url": ("url", 0),
    "md5": ("md5", 0), "sha1": ("sha1", 0), "sha256": ("sha256", 0),
    "filename|md5": ("md5", 1), "filename|sha1": ("sha1", 1), "filename|sha256": ("sha256", 1),
    "ja3-fingerprint-md5": ("ja3", 0),
}  # fmt: skip
# MISP threat_level_id (1 high, 2 medium, 3 low, 4 undefined) on the 0-100 confidence scale.
THREAT_LEVEL_CONFIDENCE = {"1": 90, "2": 60, "3": 30, "4": 50}
_GALAXY_KINDS = (
    "threat-actor", "mitre-intrusion-set", "mitre-malware", "mitre-tool", "malpedia", "rat",
    "tool", "banker", "botnet", "ransomware", "mitre-attack-pattern",
)  # fmt: skip


def _events(data: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(data, dict) and isinstance(data.get("Event"), dict):
        return [data["Event"]]
    if isinstance(data, dict) and isinstance(data.get("response"), list):
        return [e for d in data["response"] for e in _events(d, path)]
    if isinstance(data, list):
        return [e for d in data for e in _events(d, path)]
    if isinstance(data, dict) and ("Attribute" in data or "Object" in data) and "info" in data:
        return [data]
    raise IntelFormatError(f"{path}: not a MISP event (expected {{'Event': {{...}}}})")


def _tags(obj: dict[str, Any]) -> list[str]:
    return [str(t.get("name", "")) for t in obj.get("Tag") or [] if isinstance(t, dict)]


def _tlp(tags: list[str]) -> str | None:
    """The strictest TLP tag (as the STIX importer does): two tags are a producer's mistake,
    and a mistake must not make the indicator more shareable than its source meant."""
    found = [n for t in tags if t.lower().startswith("tlp:") and (n := tlp_name(t))]
    return max(found, key=TLPS.index) if found else None


def _related(event: dict[str, Any], tags: list[str]) -> list[str]:
    """Galaxy clusters (actors, malware, tools) the event is tagged with, as ``kind|value``."""
    out: set[str] = set()
    for tag in tags:
        if tag.startswith("misp-galaxy:") and "=" in tag:
            kind, _, value = tag.removeprefix("misp-galaxy:").partition("=")
            if kind in _GALAXY_KINDS:
                out.add(f"{kind}|{value.strip(chr(34))}")
    for galaxy in event.get("Galaxy") or []:
        for cluster in galaxy.get("GalaxyCluster") or []:
            if galaxy.get("type") in _GALAXY_KINDS:
                out.add(f"{galaxy['type']}|{cluster.get('value', '')}")
    return sorted(out)


def _to_ids(value: object) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def load(path: Path, default_tlp: str) -> ImportResult:
    """Matchable attributes of every event in the file; the others are listed as skipped."""
    data = read_json(path)
    result = ImportResult(Path(path), "misp", [])
    for event in _events(data, Path(path)):
        if not isinstance(event, dict):
            raise IntelFormatError(f"{path}: an Event is not an object")
        ev_tags = _tags(event)
        ev_tlp = _tlp(ev_tags) or default_tlp
        confidence = THREAT_LEVEL_CONFIDENCE.get(str(event.get("threat_level_id", "4")), 50)
        related = _related(event, ev_tags)
        attributes = list(event.get("Attribute") or [])
        for obj in event.get("Object") or []:
            attributes.extend(obj.get("Attribute") or [])
        for attr in attributes:
            if not isinstance(attr, dict) or "type" not in attr or "value" not in attr:
                raise IntelFormatError(f"{path}: an Attribute without 'type' and 'value'")
            oid = str(attr.get("uuid") or f"{event.get('uuid', '')}/{attr.get('id', '')}")
            kind_part = ATTRIBUTE_KINDS.get(attr["type"])
            if kind_part is None:
                result.skipped.append((oid, f"attribute type {attr['type']} is not matched"))
                continue
            kind, part = kind_part
            pieces = str(attr["value"]).split("|")
            raw = pieces[part] if part < len(pieces) else ""
            norm = normalise(kind, raw)
            if norm is None:
                result.skipped.append((oid, f"{raw!r} is not a valid {kind}"))
                continue
            port = None
            if attr["type"] == "ip-dst|port" and len(pieces) > 1 and pieces[1].isdigit():
                port = int(pieces[1]) if 0 < int(pieces[1]) < 65536 else None
            attr_tags = _tags(attr)
            result.indicators.append(
                Indicator(
                    type=norm[0],
                    value=norm[1],
                    object_id=oid,
                    port=port,
                    name=event.get("info"),
                    tlp=_tlp(attr_tags) or ev_tlp,
                    confidence=confidence,
                    to_ids=_to_ids(attr.get("to_ids")),
                    labels=[x for x in [attr.get("category"), *attr_tags] if x],
                    related=related,
                )
            )
            if (
                attr["type"] == "domain|ip"
                and len(pieces) > 1
                and (ip := normalise("ip", pieces[1]))
            ):
                result.indicators.append(
                    Indicator(**{**result.indicators[-1].__dict__, "type": ip[0], "value": ip[1]})
                )
    return result
