"""STIX 2.1 bundles: indicators with ``pattern_type: stix``, their markings and relationships.

What an indicator indicates (malware, intrusion sets, threat actors, campaigns, tools, attack
patterns) is kept in ``related`` so a later attribution step need not re-read the bundle; one
``attributed-to`` hop is followed, so an indicator of a threat actor also names the intrusion set
that bundle attributes to that actor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mamori.intel.common import parse_time, read_json, tlp_name
from mamori.intel.pattern import PatternError, Unmatchable, observable_of, parse
from mamori.intel.schema import ImportResult, Indicator, IntelFormatError, normalise

# The TLP marking definitions every STIX producer uses by id (STIX 2.1 §7.2.1.4 and TLP 2.0).
TLP_MARKINGS = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "clear",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "green",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "amber",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "red",
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": "clear",
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": "green",
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": "amber",
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": "amber+strict",
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": "red",
}
_TLP_ORDER = ("clear", "green", "amber", "amber+strict", "red")
RELATED_TYPES = ("intrusion-set", "threat-actor", "malware", "tool", "campaign", "attack-pattern")


def _marking_tlp(obj: dict[str, Any]) -> str | None:
    """TLP of a marking-definition object in the bundle (2.0 ``definition`` or 2.1 ``name``)."""
    definition = obj.get("definition") or {}
    if obj.get("definition_type") == "tlp" and isinstance(definition, dict):
        return tlp_name(str(definition.get("tlp", "")))
    return tlp_name(str(obj.get("name", "")))


def _related_label(obj: dict[str, Any]) -> str:
    name = obj.get("name")
    label = f"{obj['id']}|{name if isinstance(name, str) else ''}"
    refs = obj.get("external_references")
    for ref in refs if isinstance(refs, list) else []:
        if not isinstance(ref, dict):
            continue
        if ref.get("source_name") == "mitre-attack" and isinstance(ref.get("external_id"), str):
            label += f"|{ref['external_id']}"
    return label


def load(path: Path, default_tlp: str) -> ImportResult:
    """Indicators of a bundle (or a single STIX object file); skipped patterns with reasons.

    A malformed object (no id, a field of the wrong type) is skipped with its reason and the
    validator's message, not the whole file: a partner's exporter with one bad object still
    delivered the rest. Only a file that is not STIX at all is refused."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise IntelFormatError(f"{path}: not a STIX 2.1 object (no 'type')")
    objects = data.get("objects") if data["type"] == "bundle" else [data]
    if not isinstance(objects, list):
        raise IntelFormatError(f"{path}: STIX bundle without an 'objects' list")
    result = ImportResult(Path(path), "stix", [])
    by_id: dict[str, dict[str, Any]] = {}
    for i, o in enumerate(objects):
        if not isinstance(o, dict) or not isinstance(o.get("id"), str):
            where = f"objects[{i}]" if data["type"] == "bundle" else "the object"
            result.skipped.append((where, "not a STIX object (no 'id' string)"))
            continue
        by_id[o["id"]] = o
    tlp_by_marking = dict(TLP_MARKINGS)
    for o in by_id.values():
        if o.get("type") == "marking-definition" and (tlp := _marking_tlp(o)):
            tlp_by_marking[o["id"]] = tlp
    out_rel: dict[str, list[str]] = {}
    in_rel: dict[str, list[tuple[str, str]]] = {}
    for o in by_id.values():
        source, target, kind = o.get("source_ref"), o.get("target_ref"), o.get("relationship_type")
        if o.get("type") == "relationship" and isinstance(source, str) and isinstance(target, str):
            out_rel.setdefault(source, []).append(target)
            in_rel.setdefault(target, []).append((kind if isinstance(kind, str) else "", source))

    for obj in by_id.values():
        if obj.get("type") != "indicator":
            continue
        oid = obj["id"]
        if obj.get("pattern_type", "stix") != "stix" or not isinstance(obj.get("pattern"), str):
            result.skipped.append((oid, f"pattern_type {obj.get('pattern_type')!r} is not stix"))
            continue
        problem = _malformed(obj)
        if problem is not None:
            result.skipped.append((oid, problem))
            continue
        try:
            alternatives = parse(obj["pattern"])
        except (PatternError, Unmatchable) as exc:
            result.skipped.append((oid, f"{type(exc).__name__}: {exc}"))
            continue
        tlps = [
            tlp_by_marking[m] for m in obj.get("object_marking_refs") or [] if m in tlp_by_marking
        ]
        tlp = max(tlps, key=_TLP_ORDER.index) if tlps else default_tlp  # strictest marking wins
        related = _related(oid, by_id, out_rel, in_rel)
        labels = [*(obj.get("indicator_types") or []), *(obj.get("labels") or [])]
        phases = [
            f"{p.get('kill_chain_name', '')}:{p.get('phase_name', '')}"
            for p in obj.get("kill_chain_phases") or []
        ]
        before = len(result.indicators)
        for conj in alternatives:
            found = _observable(conj)
            if isinstance(found, str):
                result.skipped.append((oid, found))
                continue
            kind, raw, port = found
            norm = normalise(kind, raw)
            if norm is None:
                result.skipped.append((oid, f"{raw!r} is not a valid {kind}"))
                continue
            result.indicators.append(
                Indicator(
                    type=norm[0],
                    value=norm[1],
                    object_id=oid,
                    port=port,
                    name=obj.get("name"),
                    tlp=tlp,
                    confidence=obj.get("confidence"),
                    valid_from=parse_time(obj.get("valid_from")),
                    valid_until=parse_time(obj.get("valid_until")),
                    kill_chain_phases=phases,
                    labels=labels,
                    related=related,
                )
            )
        if len(result.indicators) == before and not any(s[0] == oid for s in result.skipped):
            result.skipped.append((oid, "pattern names nothing to match"))
    return result


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _malformed(obj: dict[str, Any]) -> str | None:
    """Why an indicator's fields cannot be imported as STIX 2.1 defines them (types the import
    relies on), with the validator's message; None when they can. Only these fields are held
    to the schema: feeds in the wild omit ``created`` or ``spec_version`` and use ids that are
    not UUIDs, and their indicators are still worth matching."""
    confidence, name = obj.get("confidence"), obj.get("name")
    problems = [
        *(["name is not a string"] if name is not None and not isinstance(name, str) else []),
        *(
            ["confidence is not an integer from 0 to 100"]
            if confidence is not None
            and (type(confidence) is not int or not 0 <= confidence <= 100)
            else []
        ),
        *(
            f"{key} is not a list of strings"
            for key in ("object_marking_refs", "indicator_types", "labels")
            if obj.get(key) is not None and not _strings(obj[key])
        ),
        *(
            ["kill_chain_phases is not a list of phases"]
            if obj.get("kill_chain_phases") is not None
            and not (
                isinstance(obj["kill_chain_phases"], list)
                and all(
                    isinstance(p, dict)
                    and isinstance(p.get("kill_chain_name"), str)
                    and isinstance(p.get("phase_name"), str)
                    for p in obj["kill_chain_phases"]
                )
            )
            else []
        ),
    ]
    if not problems:
        return None
    said = validator_message(obj)
    return f"malformed indicator: {'; '.join(problems)}" + (
        f" (stix2-validator: {said})" if said else ""
    )


def validator_message(obj: dict[str, Any]) -> str | None:
    """What stix2-validator says is wrong with ``obj`` (one line), None when it finds nothing."""
    from stix2validator import ValidationOptions, validate_instance

    try:
        result = validate_instance(obj, ValidationOptions(version="2.1"))
    except Exception as exc:  # the validator raises on shapes its schemas do not expect
        return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
    if result.is_valid:
        return None
    return " ".join("; ".join(str(e) for e in result.errors).split())[:500] or None


def _observable(conj: tuple) -> tuple[str, str, int | None] | str:
    """(kind, raw value, port) of one conjunction, or the reason it cannot be matched."""
    kind = raw = None
    port: int | None = None
    for c in conj:
        what = observable_of(c.path)
        if what is None:
            return f"{c.path} is not matched against the lake"
        if c.negated or c.op != "=":
            return f"{c.path} {'NOT ' if c.negated else ''}{c.op} cannot be matched by a join"
        if what == "implied":
            continue
        if what == "port":
            if not isinstance(c.value, float) or port is not None:
                return f"unusable port constraint {c.value!r}"
            port = int(c.value)
            continue
        if kind is not None:
            return "several observables AND-ed in one observation"
        kind, raw = what, str(c.value)
    if kind is None or raw is None:
        return "no observable in the comparison"
    return kind, raw, port


def _related(
    oid: str,
    by_id: dict[str, dict[str, Any]],
    out_rel: dict[str, list[str]],
    in_rel: dict[str, list[tuple[str, str]]],
) -> list[str]:
    """What the indicator indicates, plus one ``attributed-to`` hop either way."""
    seen: dict[str, None] = {}
    for target in out_rel.get(oid, []):
        seen[target] = None
        for nxt in out_rel.get(target, []):
            if by_id.get(nxt, {}).get("type") in ("intrusion-set", "threat-actor"):
                seen[nxt] = None
        for rel_type, src in in_rel.get(target, []):
            if rel_type == "attributed-to" and by_id.get(src, {}).get("type") in RELATED_TYPES:
                seen[src] = None
    return sorted(
        _related_label(by_id[t]) for t in seen if by_id.get(t, {}).get("type") in RELATED_TYPES
    )
