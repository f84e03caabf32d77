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


def _events(data: Any, path: Path) -> tuple[list[dict[str, Any]], int]:
    """The events of a file (an event, a list of them, a REST response, nested at any depth),
    in file order, and how many elements of its lists were none of those."""
    found: list[dict[str, Any]] = []
    others = 0
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict) and isinstance(item.get("Event"), dict):
            found.append(item["Event"])
        elif isinstance(item, dict) and isinstance(item.get("response"), list):
            stack.extend(reversed(item["response"]))
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif (
            isinstance(item, dict) and ("Attribute" in item or "Object" in item) and "info" in item
        ):
            found.append(item)
        else:
            others += 1
    if not found:
        raise IntelFormatError(f"{path}: not a MISP event (expected {{'Event': {{...}}}})")
    return found, others


def _list(value: object) -> list[Any]:
    """A MISP list field (``Attribute``, ``Object``, ``Tag``, ``Galaxy``...): absent or of
    another type is empty, as MISP itself treats it."""
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    """A MISP text field; numbers (a numeric ``info``) as their text, anything else as unset."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _tags(obj: dict[str, Any]) -> list[str]:
    names = (_text(t.get("name")) for t in _list(obj.get("Tag")) if isinstance(t, dict))
    return [n for n in names if n]


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
    for galaxy in _list(event.get("Galaxy")):
        if not isinstance(galaxy, dict) or galaxy.get("type") not in _GALAXY_KINDS:
            continue
        for cluster in _list(galaxy.get("GalaxyCluster")):
            value = _text(cluster.get("value")) if isinstance(cluster, dict) else None
            if value is not None:
                out.add(f"{galaxy['type']}|{value}")
    return sorted(out)


def _to_ids(value: object) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def load(path: Path, default_tlp: str) -> ImportResult:
    """Matchable attributes of every event in the file; the others are listed as skipped.

    An attribute (or object, or event) that is not what MISP writes is skipped with its reason,
    not the whole file: one bad attribute from a partner's instance must not cost the rest."""
    data = read_json(path)
    result = ImportResult(Path(path), "misp", [])
    events, others = _events(data, Path(path))
    if others:
        result.skipped.append((str(path), f"{others} list element(s) that are not MISP events"))
    for n, event in enumerate(events, 1):
        ev_tags = _tags(event)
        ev_tlp = _tlp(ev_tags) or default_tlp
        confidence = THREAT_LEVEL_CONFIDENCE.get(str(event.get("threat_level_id", "4")), 50)
        related = _related(event, ev_tags)
        ev_uuid = _text(event.get("uuid")) or f"event {n}"
        attributes = list(_list(event.get("Attribute")))
        for obj in _list(event.get("Object")):
            if isinstance(obj, dict):
                attributes.extend(_list(obj.get("Attribute")))
            else:
                result.skipped.append((ev_uuid, "an Object that is not an object"))
        for i, attr in enumerate(attributes):
            if not isinstance(attr, dict):
                result.skipped.append((f"{ev_uuid}/{i}", "an Attribute that is not an object"))
                continue
            oid = _text(attr.get("uuid")) or f"{ev_uuid}/{_text(attr.get('id')) or i}"
            kind_name, value = _text(attr.get("type")), _text(attr.get("value"))
            if kind_name is None or value is None:
                result.skipped.append((oid, "an Attribute without a 'type' and a 'value'"))
                continue
            kind_part = ATTRIBUTE_KINDS.get(kind_name)
            if kind_part is None:
                result.skipped.append((oid, f"attribute type {kind_name} is not matched"))
                continue
            kind, part = kind_part
            pieces = value.split("|")
            raw = pieces[part] if part < len(pieces) else ""
            norm = normalise(kind, raw)
            if norm is None:
                result.skipped.append((oid, f"{raw!r} is not a valid {kind}"))
                continue
            port = None
            digits = pieces[1] if kind_name == "ip-dst|port" and len(pieces) > 1 else ""
            if digits.isascii() and digits.isdigit() and 0 < int(digits) < 65536:
                port = int(digits)
            attr_tags = _tags(attr)
            result.indicators.append(
                Indicator(
                    type=norm[0],
                    value=norm[1],
                    object_id=oid,
                    port=port,
                    name=_text(event.get("info")),
                    tlp=_tlp(attr_tags) or ev_tlp,
                    confidence=confidence,
                    to_ids=_to_ids(attr.get("to_ids")),
                    labels=[x for x in [_text(attr.get("category")), *attr_tags] if x],
                    related=related,
                )
            )
            if kind_name == "domain|ip" and len(pieces) > 1 and (ip := normalise("ip", pieces[1])):
                result.indicators.append(
                    Indicator(**{**result.indicators[-1].__dict__, "type": ip[0], "value": ip[1]})
                )
    return result
