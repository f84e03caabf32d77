"""A case or a patrol report as one MISP event (``{"Event": {...}}``), the JSON MISP imports.

What goes in: every shareable observable of every incident (:mod:`mamori.share.observables`, the
same list the STIX export makes indicators of) as an Attribute, the incident's ATT&CK techniques
as ``misp-galaxy:mitre-attack-pattern`` tags, and the TLP as a ``tlp:`` tag. The event's TLP is
the strictest of its content: MISP partners read the event tag first, and an attribute that came
from a partner's AMBER intel must not ride out under a GREEN event tag.

Attribution hypotheses become ``text`` attributes (not for detection), not galaxy tags: a galaxy
tag asserts the actor, while indicator overlap supports at most "roughly even chance".

Ids are uuid5 over stable content, like the STIX export, so re-exporting updates the same event
and attributes in MISP instead of duplicating them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mamori.correlate.attack import technique_name
from mamori.share.observables import Observable, incident_observables
from mamori.share.stix import MAMORI_NAMESPACE, ExportError, ExportOptions
from mamori.share.tlp import Tlp, effective

# MISP attribute type and category per observable kind; attackers are sources, the rest
# (C2, reflectors named by intel, domains) destinations.
_TYPES = {
    "domain": "domain",
    "url": "url",
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "ja3": "ja3-fingerprint-md5",
    "ja3s": "ja3-fingerprint-md5",
    "ja4": "text",
}
_CATEGORY = {
    "md5": "Payload delivery",
    "sha1": "Payload delivery",
    "sha256": "Payload delivery",
}
# MISP threat_level_id: 1 high, 2 medium, 3 low, 4 undefined.
_THREAT_LEVEL = {"critical": 1, "high": 1, "medium": 2, "low": 3}


def _uuid(key: str) -> str:
    return str(uuid.uuid5(MAMORI_NAMESPACE, "misp|" + key))


def _epoch(value: object) -> int:
    ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return int(ts.timestamp())


def attack_tag(tid: str) -> str:
    """``misp-galaxy:mitre-attack-pattern="Web Protocols - T1071.001"``, the cluster value
    MISP's ATT&CK galaxy uses (a sub-technique under its own name)."""
    name = technique_name(tid)
    if "." in tid:
        name = name.split(": ", 1)[-1]
    return f'misp-galaxy:mitre-attack-pattern="{name} - {tid}"'


def _attribute_type(obs: Observable) -> str:
    if obs.kind in ("ip", "cidr"):
        return "ip-src" if obs.role == "attacker" else "ip-dst"
    return _TYPES[obs.kind]


def _attribute(obs: Observable, inc: Mapping[str, Any], tlp: Tlp) -> dict[str, Any]:
    inc_id = str(inc["id"])
    comment = f"{obs.role} in {inc_id}: {inc.get('title', '')}"
    if obs.source:
        comment += f" (matched intel from {obs.source})"
    value = obs.value
    if obs.kind == "url" and "://" not in value:
        value = "http://" + value
    return {
        "uuid": _uuid(f"attr|{inc_id}|{obs.kind}|{obs.value}|{tlp.label}"),
        "type": _attribute_type(obs),
        "category": _CATEGORY.get(obs.kind, "Network activity"),
        "value": value,
        "to_ids": obs.kind != "ja4",
        "comment": comment,
        "timestamp": str(_epoch(inc["last_seen"])),
        "first_seen": str(inc["first_seen"]),
        "last_seen": str(inc["last_seen"]),
        "Tag": [{"name": effective(obs.tlp, tlp).misp_tag}],
    }


def _hypothesis(hyp: Mapping[str, Any], inc: Mapping[str, Any], tlp: Tlp) -> dict[str, Any]:
    text = (
        f"attribution hypothesis for {inc['id']}: {hyp.get('hypothesis')}, "
        f"{hyp.get('likelihood')} ({hyp.get('confidence_level')} confidence, score "
        f"{hyp.get('score')}); indicator overlap only"
    )
    return {
        "uuid": _uuid(f"hyp|{inc['id']}|{hyp.get('type')}|{hyp.get('name')}|{tlp.label}"),
        "type": "text",
        "category": "Attribution",
        "value": text,
        "to_ids": False,
        "comment": "; ".join(str(a) for a in hyp.get("evidence_against") or []),
        "timestamp": str(_epoch(inc["last_seen"])),
        "Tag": [{"name": tlp.misp_tag}],
    }


def event(
    incidents: Sequence[Mapping[str, Any]],
    info: str,
    key: str,
    options: ExportOptions | None = None,
) -> dict[str, Any]:
    """One MISP event for the incidents; ``key`` makes its uuid (a case id, a report's id)."""
    opt = options or ExportOptions()
    if not incidents:
        raise ExportError("nothing to export: no incidents")
    attributes: list[dict[str, Any]] = []
    techniques: dict[str, None] = {}
    levels: list[Tlp] = [opt.tlp]
    try:
        for inc in incidents:
            for obs in incident_observables(inc, private_addresses=opt.private_addresses):
                levels.append(effective(obs.tlp, opt.tlp))
                attributes.append(_attribute(obs, inc, opt.tlp))
            for hyp in inc.get("attribution") or []:
                marks = [effective(e.get("tlp"), opt.tlp) for e in hyp.get("evidence_for") or []]
                level = max(marks, default=opt.tlp)
                levels.append(level)
                attributes.append(_hypothesis(hyp, inc, level))
            techniques.update(dict.fromkeys(inc.get("techniques") or []))
        first = min(str(i["first_seen"]) for i in incidents)
        last = max(_epoch(i["last_seen"]) for i in incidents)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"incident without a usable id/first_seen/last_seen: {exc}") from None
    severities = [str(i.get("severity")) for i in incidents]
    level = max(levels)
    return {
        "Event": {
            "uuid": _uuid(f"event|{key}|{level.label}"),
            "info": info,
            "date": first[:10],
            "timestamp": str(last),
            "published": False,
            "analysis": "2",
            "distribution": "0",  # this organisation only: the TLP tag says what may follow
            "threat_level_id": str(min((_THREAT_LEVEL.get(s, 4) for s in severities), default=4)),
            "Orgc": {"name": opt.producer, "uuid": _uuid(f"org|{opt.producer}")},
            "Tag": [{"name": level.misp_tag}] + [{"name": attack_tag(t)} for t in techniques],
            "Attribute": sorted(attributes, key=lambda a: (a["type"], a["value"], a["uuid"])),
        }
    }


def dumps(ev: Mapping[str, Any]) -> str:
    return json.dumps(ev, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
