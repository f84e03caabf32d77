"""Incidents, alerts and indicators as a STIX 2.1 bundle, with TLP 2.0 markings and stable ids.

Plain dicts rather than the ``stix2`` library: an export must be byte-identical when re-run, and
``stix2`` objects fill ``created``/``modified`` with the clock and re-order nothing for us; dicts
keep every value ours and deterministic, cost no per-object validation we then repeat, and the
OASIS validator (:func:`validate`) checks the result anyway. The one thing ``stix2`` computes that
we must match, the deterministic ids of cyber observables (STIX 2.1 section 2.9), is
:func:`sco_id` and is tested against ``stix2`` itself.

What becomes what (docs/sharing.md):
- an incident → a ``report`` (``threat-report``) referring to everything below and a ``note``
  telling its stages in kill-chain order;
- each alert → an ``observed-data`` (the addresses it names as SCOs, the time span, the count)
  and a ``sighting`` of the ATT&CK technique it saw;
- each ATT&CK technique → an ``attack-pattern`` with its ``mitre-attack`` external reference;
- each shareable observable (:mod:`mamori.share.observables`) → an ``indicator`` with a STIX
  pattern, ``indicates`` relationships to the techniques and a ``sighting`` by us;
- each attribution hypothesis → an ``intrusion-set``/``threat-actor``, an ``indicates``
  relationship from the overlapping indicators (confidence = the hypothesis' score) and a
  ``note`` with the evidence for and against, hedged as the report hedges it.

Ids: ``type--uuid5(MAMORI_NAMESPACE, key)`` where ``key`` is the object's stable content (the
incident id, the alert's detector and entities and span, the pattern) *and its TLP*: the same
report exported twice gives the same bundle, and the same facts exported at another TLP give
other objects, so a partner's AMBER copy is never silently replaced by a CLEAR one of the same id.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mamori.correlate.attack import tactics_of, technique_name
from mamori.share.observables import Observable, incident_observables, intel_matches
from mamori.share.tlp import Tlp, effective, marking_definition, parse_tlp

# Fixed namespaces: changing either changes every id we ever exported.
MAMORI_NAMESPACE = uuid.UUID("5b8a3d8e-6f0c-5d3a-9c52-6d616d6f7269")
SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")  # STIX 2.1 section 2.9
# created/modified of objects whose content does not depend on any observation (our identity,
# ATT&CK techniques): a constant, so they are one version everywhere.
EPOCH = "2025-01-01T00:00:00.000Z"
ATTACK_URL = "https://attack.mitre.org/techniques/"
SEVERE = ("high", "critical")


class ExportError(ValueError):
    """Input that cannot be exported; the message names what and why."""


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """How to export. ``tlp`` is the least marking every object carries (intel may raise it)."""

    tlp: Tlp = Tlp.AMBER
    producer: str = "mamori"
    private_addresses: bool = False  # also make indicators of non-routable attacker addresses


def stix_time(value: object) -> str:
    """An ISO time from report.json → STIX timestamp (UTC, ``Z``, microseconds kept)."""
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ExportError(f"not an ISO 8601 time: {value!r}") from exc
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sco_id(sco_type: str, contributing: Mapping[str, Any]) -> str:
    """The deterministic id STIX 2.1 prescribes for a cyber observable: UUIDv5 in the SCO
    namespace over the canonical JSON (RFC 8785) of its id-contributing properties."""
    canon = json.dumps(contributing, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{sco_type}--{uuid.uuid5(SCO_NAMESPACE, canon)}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


_HASH_NAMES = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256"}


def pattern_of(obs: Observable) -> str:
    """The STIX pattern for an observable: ipv4/ipv6 address or range, domain, URL (with a
    scheme, as the ``url`` SCO requires), file hash, or a TLS fingerprint (``x-ja3`` and kin:
    STIX 2.1 has no JA3 property, so a custom object type keeps the pattern honest)."""
    v = _escape(obs.value)
    if obs.kind in ("ip", "cidr"):
        sco = "ipv6-addr" if ":" in obs.value else "ipv4-addr"
        return f"[{sco}:value = '{v}']"
    if obs.kind == "domain":
        return f"[domain-name:value = '{v}']"
    if obs.kind == "url":
        url = obs.value if "://" in obs.value else "http://" + obs.value
        return f"[url:value = '{_escape(url)}']"
    if obs.kind in _HASH_NAMES:
        return f"[file:hashes.'{_HASH_NAMES[obs.kind]}' = '{v}']"
    if obs.kind in ("ja3", "ja3s", "ja4"):
        return f"[x-{obs.kind}:value = '{v}']"
    raise ExportError(f"no STIX pattern for a {obs.kind!r} observable")


class _Builder:
    """Collects objects under provisional keys; ids are fixed once markings are known."""

    def __init__(self, options: ExportOptions) -> None:
        self.opt = options
        self.objects: dict[str, dict[str, Any]] = {}  # provisional id -> object
        self.keys: dict[str, str] = {}  # provisional id -> stable key
        self.floor: dict[str, Tlp] = {}  # provisional id -> least TLP of its own content
        self.identity = self._identity()

    # -- ids --------------------------------------------------------------------------------
    def add(self, obj: dict[str, Any], key: str, tlp: Tlp | None = None) -> str:
        pid = f"{obj['type']}--{uuid.uuid5(MAMORI_NAMESPACE, obj['type'] + '|' + key)}"
        obj["id"] = pid
        if pid in self.objects:  # same content seen twice (e.g. a technique of two alerts)
            if tlp is not None:
                self.floor[pid] = max(self.floor.get(pid, tlp), tlp)
            return pid
        self.objects[pid] = obj
        self.keys[pid] = key
        if tlp is not None:
            self.floor[pid] = tlp
        return pid

    def add_sco(self, obj: dict[str, Any], contributing: Mapping[str, Any]) -> str:
        obj["id"] = sco_id(obj["type"], contributing)
        self.objects.setdefault(obj["id"], obj)
        return str(obj["id"])

    def _identity(self) -> str:
        obj = {
            "type": "identity",
            "spec_version": "2.1",
            "created": EPOCH,
            "modified": EPOCH,
            "name": self.opt.producer,
            "identity_class": "organization",
            "description": "Producer of this bundle (mamori active cyber defence).",
        }
        # Who we are is public: CLEAR, so every partner can resolve created_by_ref.
        return self.add(obj, "producer|" + self.opt.producer, Tlp.CLEAR)

    def sdo(self, type_: str, created: str, **props: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "type": type_,
            "spec_version": "2.1",
            "created": created,
            "modified": created,
            "created_by_ref": self.identity,
        }
        obj.update({k: v for k, v in props.items() if v not in (None, [], "")})
        return obj

    def attack_pattern(self, tid: str) -> str:
        url = ATTACK_URL + tid.replace(".", "/") + "/"
        obj = self.sdo(
            "attack-pattern",
            EPOCH,
            name=technique_name(tid),
            external_references=[{"source_name": "mitre-attack", "external_id": tid, "url": url}],
            kill_chain_phases=[
                {"kill_chain_name": "mitre-attack", "phase_name": t} for t in tactics_of(tid)
            ],
        )
        # ATT&CK is public knowledge: its techniques are TLP:CLEAR whatever cites them.
        return self.add(obj, "technique|" + tid, Tlp.CLEAR)

    def relationship(
        self, rel: str, src: str, dst: str, created: str, tlp: Tlp, **props: Any
    ) -> str:
        obj = self.sdo(
            "relationship", created, relationship_type=rel, source_ref=src, target_ref=dst, **props
        )
        return self.add(obj, f"{rel}|{self.keys[src]}|{self.keys[dst]}", tlp)

    # -- markings and final ids -------------------------------------------------------------
    def finish(self) -> list[dict[str, Any]]:
        """Fix every object's TLP, split containers by TLP, then fix ids over key + TLP.

        - An observable (SCO) takes the least TLP of the observed-data citing it: its value is
          disclosed at that level anyway; what makes it sensitive (who says it is bad) lives in
          the indicator and sighting, which keep their own marking.
        - A relationship, sighting or observed-data is at least as strict as what it cites.
        - A report or note never rises: what it cites above its own TLP moves to an addendum
          note at that TLP (citing the report), so a GREEN partner still gets the GREEN report
          and an AMBER partner the whole story.
        """
        tlp = dict(self.floor)
        for pid, o in self.objects.items():
            if o["type"] == "observed-data":
                for r in o["object_refs"]:
                    tlp[r] = min(tlp.get(r, Tlp.RED), tlp[pid])
        raising = {
            pid
            for pid, o in self.objects.items()
            if pid in self.floor and o["type"] not in ("attack-pattern", "report", "note")
        }
        changed = True
        while changed:
            changed = False
            for pid in raising:
                for r in _refs(self.objects[pid]):
                    if r in raising and tlp[r] > tlp[pid]:
                        tlp[pid] = tlp[r]
                        changed = True
        for pid, o in list(self.objects.items()):
            if o["type"] not in ("report", "note") or pid not in tlp:
                continue
            above: dict[Tlp, list[str]] = {}
            for r in o["object_refs"]:
                if tlp.get(r, Tlp.CLEAR) > tlp[pid]:
                    above.setdefault(tlp[r], []).append(r)
            if not above:
                continue
            moved = {r for refs in above.values() for r in refs}
            o["object_refs"] = [r for r in o["object_refs"] if r not in moved] or [self.identity]
            if o["type"] != "report":
                continue
            for level, refs in sorted(above.items()):
                note = self.sdo(
                    "note",
                    o["created"],
                    abstract=f"{level} addendum to: {o.get('name', '')}",
                    content=(
                        f"What this report cites at {level}: shared only as {level} allows, "
                        "so the report itself can go where its own marking allows."
                    ),
                    authors=[self.opt.producer],
                    object_refs=[pid, *refs],
                )
                nid = self.add(note, f"{self.keys[pid]}|addendum|{level.label}", level)
                tlp[nid] = level
        final: dict[str, str] = {}
        for pid in self.objects:
            if pid in self.keys and pid != self.identity and pid in tlp:
                key = f"{self.keys[pid]}|{tlp[pid].label}"
                type_ = self.objects[pid]["type"]
                final[pid] = f"{type_}--{uuid.uuid5(MAMORI_NAMESPACE, type_ + '|' + key)}"
            else:
                final[pid] = pid

        def remap(value: Any) -> Any:
            if isinstance(value, str):
                return final.get(value, value)
            if isinstance(value, list):
                return [remap(v) for v in value]
            return value

        out: list[dict[str, Any]] = []
        for pid, o in self.objects.items():
            new = {
                k: remap(v) if (k.endswith("_ref") or k.endswith("_refs") or k == "id") else v
                for k, v in o.items()
            }
            if pid in tlp:
                new["object_marking_refs"] = [tlp[pid].marking_id]
            out.append(new)
        used = sorted({lv for pid, lv in tlp.items()})
        markings = [marking_definition(lv) for lv in used]
        return markings + sorted(out, key=lambda o: (_ORDER.get(o["type"], 50), o["id"]))


def _refs(o: Mapping[str, Any]) -> list[str]:
    """Ids an object cites (its creator and markings aside)."""
    out: list[str] = []
    for k, v in o.items():
        if k in ("created_by_ref", "object_marking_refs"):
            continue
        if k.endswith("_ref") and isinstance(v, str):
            out.append(v)
        elif k.endswith("_refs") and isinstance(v, list):
            out.extend(v)
    return out


_ORDER = {
    "identity": 0,
    "attack-pattern": 1,
    "intrusion-set": 2,
    "threat-actor": 2,
    "indicator": 3,
    "ipv4-addr": 4,
    "ipv6-addr": 4,
    "domain-name": 4,
    "network-traffic": 5,
    "observed-data": 6,
    "sighting": 7,
    "relationship": 8,
    "note": 9,
    "report": 10,
}


def _address_sco(b: _Builder, addr: str) -> str:
    sco = "ipv6-addr" if ":" in addr else "ipv4-addr"
    return b.add_sco({"type": sco, "spec_version": "2.1", "value": addr}, {"value": addr})


def _alert_objects(
    b: _Builder, inc_key: str, alert: Mapping[str, Any], n: int, tlp: Tlp, intel_tlp: Tlp | None
) -> list[str]:
    first, last = stix_time(alert["first_seen"]), stix_time(alert["last_seen"])
    src, dst = alert.get("src"), alert.get("dst")
    key = f"{inc_key}|{alert.get('detector')}|{src}|{dst}|{first}|{last}"
    own = effective(intel_tlp, tlp)
    scos: list[str] = []
    addr_refs: dict[str, str] = {}
    for role, addr in (("src", src), ("dst", dst)):
        if addr:
            addr_refs[role] = _address_sco(b, str(addr))
            scos.append(addr_refs[role])
    if addr_refs:
        proto = "ipv6" if any(":" in str(a) for a in (src, dst) if a) else "ipv4"
        nt: dict[str, Any] = {"type": "network-traffic", "spec_version": "2.1"}
        contributing: dict[str, Any] = {"protocols": [proto]}
        if "src" in addr_refs:
            contributing["src_ref"] = addr_refs["src"]
        if "dst" in addr_refs:
            contributing["dst_ref"] = addr_refs["dst"]
        nt.update(contributing)
        scos.append(b.add_sco(nt, contributing))
    refs: list[str] = []
    if scos:
        od = b.sdo(
            "observed-data",
            last,
            first_observed=first,
            last_observed=last,
            number_observed=max(1, min(int(alert.get("count") or 1), 999_999_999)),
            object_refs=sorted(set(scos)),
        )
        refs.append(b.add(od, key, own))
        refs.extend(sorted(set(scos)))
    techniques = list(alert.get("techniques") or [])
    if techniques:
        ap = b.attack_pattern(techniques[0])
        sighting = b.sdo(
            "sighting",
            last,
            description=str(alert.get("summary") or ""),
            first_seen=first,
            last_seen=last,
            count=max(0, min(int(alert.get("count") or 1), 999_999_999)),
            sighting_of_ref=ap,
            observed_data_refs=[refs[0]] if scos else None,
            where_sighted_refs=[b.identity],
            confidence=_confidence(alert.get("confidence")),
        )
        refs.append(b.add(sighting, key + f"|sighting|{n}", own))
    return refs


def _confidence(value: object) -> int | None:
    try:
        return max(0, min(100, round(float(value) * 100)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _incident_objects(b: _Builder, inc: Mapping[str, Any], tlp: Tlp) -> str:
    inc_id = str(inc.get("id") or "")
    if not inc_id:
        raise ExportError("an incident without an id")
    first, last = stix_time(inc["first_seen"]), stix_time(inc["last_seen"])
    inc_key = f"incident|{inc_id}"
    techniques = list(inc.get("techniques") or [])
    refs: list[str] = [b.attack_pattern(t) for t in techniques]
    observables = incident_observables(inc, private_addresses=b.opt.private_addresses)
    intel_tlp = {o.key: o.tlp for o in observables if o.tlp is not None}
    severe = str(inc.get("severity")) in SEVERE
    indicators: dict[tuple[str, str], str] = {}
    for obs in observables:
        own = effective(obs.tlp, tlp)
        what = {"attacker": "attacker address", "domain": "domain", "intel": "known indicator"}
        desc = f"{what[obs.role]} in {inc_id}: {inc.get('title', '')}"
        if obs.source:
            desc += f" (matched intel from {obs.source})"
        ind = b.sdo(
            "indicator",
            last,
            name=f"{obs.kind} {obs.value}",
            description=desc,
            indicator_types=["malicious-activity" if severe else "anomalous-activity"],
            pattern=pattern_of(obs),
            pattern_type="stix",
            pattern_version="2.1",
            valid_from=first,
            confidence=_confidence(inc.get("confidence")),
            kill_chain_phases=[
                {"kill_chain_name": "mitre-attack", "phase_name": t}
                for t in dict.fromkeys(p for tid in techniques for p in tactics_of(tid))
            ],
            labels=[str(inc.get("severity"))] if inc.get("severity") else None,
        )
        iid = b.add(ind, f"{inc_key}|{pattern_of(obs)}", own)
        indicators[obs.key] = iid
        refs.append(iid)
        for ap in refs[: len(techniques)]:
            refs.append(b.relationship("indicates", iid, ap, last, own))
        sighting = b.sdo(
            "sighting",
            last,
            first_seen=first,
            last_seen=last,
            sighting_of_ref=iid,
            where_sighted_refs=[b.identity],
        )
        refs.append(b.add(sighting, f"{inc_key}|sighted|{pattern_of(obs)}", own))
    for n, alert in enumerate(inc.get("alerts") or []):
        hit = intel_matches(alert)
        refs.extend(
            _alert_objects(b, inc_key, alert, n, tlp, intel_tlp.get(hit.key) if hit else None)
        )
    domains = [str(d) for d in (inc.get("entities") or {}).get("domains") or []]
    if domains:
        scos = sorted(
            b.add_sco({"type": "domain-name", "spec_version": "2.1", "value": d}, {"value": d})
            for d in domains
        )
        od = b.sdo(
            "observed-data",
            last,
            first_observed=first,
            last_observed=last,
            number_observed=1,
            object_refs=scos,
        )
        refs.append(b.add(od, f"{inc_key}|domains", tlp))
        refs.extend(scos)
    refs.extend(_attribution(b, inc, inc_key, last, tlp, indicators))
    stages = inc.get("stages") or []
    story = "\n".join(
        f"{s.get('first_seen', '')}  {s.get('tactic', '')}: {', '.join(s.get('techniques', []))}"
        for s in stages
    )
    note = b.sdo(
        "note",
        last,
        abstract=f"{inc_id} in kill-chain order",
        content=story or str(inc.get("title", "")),
        authors=[b.opt.producer],
        object_refs=sorted(set(refs)) or [b.identity],
    )
    refs.append(b.add(note, f"{inc_key}|stages", tlp))
    report = b.sdo(
        "report",
        last,
        name=str(inc.get("title") or inc_id),
        description=(
            f"mamori incident {inc_id}: severity {inc.get('severity')}, "
            f"confidence {inc.get('confidence')}, {first} to {last}."
        ),
        report_types=["threat-report"],
        published=last,
        object_refs=sorted(set(refs)),
        confidence=_confidence(inc.get("confidence")),
        labels=[str(inc.get("severity"))] if inc.get("severity") else None,
        external_references=[{"source_name": "mamori", "external_id": inc_id}],
    )
    return b.add(report, inc_key, tlp)


def _attribution(
    b: _Builder,
    inc: Mapping[str, Any],
    inc_key: str,
    when: str,
    tlp: Tlp,
    indicators: Mapping[tuple[str, str], str],
) -> list[str]:
    refs: list[str] = []
    for hyp in inc.get("attribution") or []:
        kind = str(hyp.get("type"))
        if kind not in ("intrusion-set", "threat-actor"):
            continue
        evidence = list(hyp.get("evidence_for") or [])
        marks = [parse_tlp(e["tlp"]) for e in evidence if e.get("tlp")]
        own = effective(max(marks) if marks else None, tlp)
        props: dict[str, Any] = {"name": str(hyp.get("name") or hyp.get("stix_id"))}
        if kind == "threat-actor":
            props["threat_actor_types"] = ["unknown"]
        actor = b.add(
            b.sdo(kind, EPOCH, **props), f"actor|{kind}|{props['name']}|{hyp.get('stix_id')}", own
        )
        refs.append(actor)
        score = float(hyp.get("score") or 0.0)
        words = f"{hyp.get('likelihood')} ({hyp.get('confidence_level')} confidence)"
        for e in evidence:
            kind_value = str(e.get("indicator", ""))
            k, _, v = kind_value.partition(":")
            iid = indicators.get((k, v))
            if iid is None:
                continue
            refs.append(
                b.relationship(
                    "indicates",
                    iid,
                    actor,
                    when,
                    own,
                    confidence=_confidence(score),
                    description=f"attribution hypothesis: {words}; indicator overlap only",
                )
            )
        content = "\n".join(
            [f"Likelihood: {words}, score {score}."]
            + [
                f"For: {e.get('indicator')} from {e.get('source')} "
                f"(confidence {e.get('confidence')}, hosts {', '.join(e.get('hosts', []))})"
                for e in evidence
            ]
            + [f"Against: {a}" for a in hyp.get("evidence_against") or []]
        )
        note = b.sdo(
            "note",
            when,
            abstract=f"Attribution hypothesis for {inc.get('id')}: {hyp.get('hypothesis')}",
            content=content,
            authors=[b.opt.producer],
            object_refs=[actor],
            confidence=_confidence(score),
        )
        refs.append(b.add(note, f"{inc_key}|hypothesis|{kind}|{props['name']}", own))
    return refs


@dataclass(frozen=True, slots=True)
class Container:
    """What the incidents were exported as part of (a case): one more report citing theirs."""

    key: str  # stable: the case id
    name: str
    published: str  # ISO time
    description: str = ""


def incidents_bundle(
    incidents: Sequence[Mapping[str, Any]],
    options: ExportOptions | None = None,
    container: Container | None = None,
) -> dict[str, Any]:
    """A STIX 2.1 bundle of the incidents (report.json's shape); deterministic."""
    opt = options or ExportOptions()
    b = _Builder(opt)
    reports: list[str] = []
    for inc in incidents:
        try:
            reports.append(_incident_objects(b, inc, opt.tlp))
        except (KeyError, TypeError) as exc:
            raise ExportError(f"incident {inc.get('id', '?')}: missing or bad {exc}") from None
    if container is not None and reports:
        when = stix_time(container.published)
        case = b.sdo(
            "report",
            when,
            name=container.name,
            description=container.description,
            report_types=["threat-report"],
            published=when,
            object_refs=sorted(set(reports)),
            external_references=[{"source_name": "mamori", "external_id": container.key}],
        )
        b.add(case, "container|" + container.key, opt.tlp)
    objects = b.finish()
    digest = "|".join(f"{o['id']}@{o.get('modified', '')}" for o in objects)
    return {
        "type": "bundle",
        "id": f"bundle--{uuid.uuid5(MAMORI_NAMESPACE, 'bundle|' + digest)}",
        "objects": objects,
    }


def report_bundle(
    report: Mapping[str, Any], options: ExportOptions | None = None
) -> dict[str, Any]:
    """A patrol report's incidents as a bundle."""
    incidents = report.get("incidents")
    if not isinstance(incidents, list):
        raise ExportError("report has no incidents[] list")
    return incidents_bundle(incidents, options)


def validate(bundle: Mapping[str, Any] | str) -> list[str]:
    """Errors the OASIS ``stix2-validator`` finds (empty when the bundle is valid)."""
    from stix2validator import ValidationOptions, validate_string

    text = bundle if isinstance(bundle, str) else json.dumps(bundle)
    results = validate_string(text, ValidationOptions(version="2.1"))
    errors: list[str] = []
    for result in results if isinstance(results, list) else [results]:
        errors.extend(str(e) for e in result.errors)
        if not result.is_valid and not result.errors:
            errors.append(f"{result.object_id}: invalid (no reason given)")
    return errors


def dumps(bundle: Mapping[str, Any]) -> str:
    """The bundle as stable JSON text (sorted keys, so re-export is byte-identical)."""
    return json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def object_ids(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(o["id"]) for o in objects]
