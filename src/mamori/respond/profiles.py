"""Profiles: which decisions mamori proposes for which incidents, as data (like CrowdSec's
``profiles.yaml``).

A profiles file is a YAML stream of profiles (documents separated by ``---``), read in order. A
profile applies when *any* of its ``filters`` holds (every key of one filter must hold); its
``decisions`` are then proposed for every target they name, and ``on_success: break`` stops the
profiles after it for that incident. Profiles only propose: the guard judges every proposal.

    name: ssh_bruteforce
    match: incident            # or alert: filter each alert, take src/dst from the matching alert
    filters:
      - techniques: [T1110]    # any of; T1110 also matches T1110.001
        severity: medium       # at least
        confidence: 0.5        # at least
        detectors: ["bruteforce.*"]   # glob, any of (match: incident -> any of its alerts)
        has: [attackers]       # entity kinds that must be present
    decisions:
      - {action: block_ip, target: attackers, ttl: 4h, scope: edge, reason: "{title}"}
    on_success: break

Targets: ``attackers``, ``victims``, ``domains`` (the incident's entities) and ``src``, ``dst``
(the alerts'). An action takes only values of its kind: ``block_ip`` an address ``dst``, ``sinkhole``
a name ``dst``. A ``profiles.local.yaml`` beside the file is read first, as CrowdSec reads
``profiles.yaml.local``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mamori.respond.decision import Action, Decision
from mamori.respond.duration import parse_duration
from mamori.respond.incidents import SEVERITIES, Alert, Incident
from mamori.respond.targets import TargetError, parse_domain, parse_network

TARGETS = ("attackers", "victims", "domains", "src", "dst")
HAS = TARGETS
FILTER_KEYS = {"techniques", "severity", "confidence", "detectors", "has"}
PROFILE_KEYS = {"name", "match", "filters", "decisions", "on_success", "description"}
DECISION_KEYS = {"action", "target", "ttl", "scope", "reason"}
IP_ONLY = frozenset({Action.block_ip, Action.rate_limit, Action.quarantine})
NAME_ONLY = frozenset({Action.block_domain, Action.sinkhole})
PLACEHOLDERS = {
    "incident",
    "title",
    "severity",
    "confidence",
    "detector",
    "summary",
    "profile",
    "target",
}


class ProfileError(ValueError):
    """A profiles file that cannot be used; names the file, the profile, the key and the reason."""


@dataclass(frozen=True)
class Filter:
    techniques: tuple[str, ...] = ()
    severity: str | None = None
    confidence: float | None = None
    detectors: tuple[str, ...] = ()
    has: tuple[str, ...] = ()

    def holds(self, incident: Incident, alert: Alert | None) -> bool:
        subject: Incident | Alert = alert or incident
        if self.severity and SEVERITIES.index(subject.severity) < SEVERITIES.index(self.severity):
            return False
        if self.confidence is not None and subject.confidence < self.confidence:
            return False
        if self.techniques and not any(
            t == want or t.startswith(want + ".")
            for t in subject.techniques
            for want in self.techniques
        ):
            return False
        if self.detectors:
            names = [alert.detector] if alert else [a.detector for a in incident.alerts]
            if not any(fnmatch.fnmatchcase(n, p) for n in names for p in self.detectors):
                return False
        return all(_values(kind, incident, alert) for kind in self.has)


@dataclass(frozen=True)
class Proposal:
    action: Action
    target: str  # one of TARGETS
    ttl: int
    scope: str
    reason: str


@dataclass(frozen=True)
class Profile:
    name: str
    match: str  # "incident" or "alert"
    filters: tuple[Filter, ...]
    decisions: tuple[Proposal, ...]
    on_success: str  # "break" or "continue"
    source: str = ""


@dataclass(frozen=True)
class Proposed:
    """A decision and the profile that proposed it (kept for the audit and the plan output)."""

    decision: Decision
    profile: str


class Profiles:
    """An ordered list of profiles; ``propose`` turns incidents into proposed decisions."""

    def __init__(self, profiles: Sequence[Profile]) -> None:
        self.profiles = tuple(profiles)

    def propose(self, incidents: Sequence[Incident], now: datetime | None = None) -> list[Proposed]:
        now = now or datetime.now(UTC)
        out: dict[str, Proposed] = {}
        for incident in incidents:
            for profile in self.profiles:
                subjects: list[Alert | None] = (
                    [None] if profile.match == "incident" else list(incident.alerts)
                )
                hit = False
                for alert in subjects:
                    if not any(f.holds(incident, alert) for f in profile.filters):
                        continue
                    hit = True
                    for d in _decisions(profile, incident, alert, now):
                        out.setdefault(d.id, Proposed(d, profile.name))
                if hit and profile.on_success == "break":
                    break
        return list(out.values())


def _decisions(
    profile: Profile, incident: Incident, alert: Alert | None, now: datetime
) -> Iterator[Decision]:
    subject: Incident | Alert = alert or incident
    for p in profile.decisions:
        for value in _values(p.target, incident, alert):
            target = _of_kind(p.action, value)
            if target is None:
                continue
            fields = {
                "incident": incident.id,
                "title": incident.title,
                "severity": subject.severity,
                "confidence": f"{subject.confidence:.2f}",
                "detector": alert.detector
                if alert
                else ",".join(dict.fromkeys(a.detector for a in incident.alerts)),
                "summary": alert.summary if alert else incident.title,
                "profile": profile.name,
                "target": target,
            }
            yield Decision(
                action=p.action,
                target=target,
                reason=p.reason.format_map(fields),
                incident=incident.id,
                confidence=subject.confidence,
                ttl=p.ttl,
                scope=p.scope,
                created=now,
            )


def _values(kind: str, incident: Incident, alert: Alert | None) -> list[str]:
    if kind in ("attackers", "victims", "domains"):
        return list(getattr(incident, kind))
    alerts = [alert] if alert else list(incident.alerts)
    return list(dict.fromkeys(v for a in alerts if (v := getattr(a, kind))))


def _of_kind(action: Action, value: str) -> str | None:
    """The canonical spelling of ``value`` if it is of the kind ``action`` takes, else None."""
    try:
        net = parse_network(value)
    except TargetError:
        net = None
    if net is not None:
        return None if action in NAME_ONLY else net.text
    if action in IP_ONLY:
        return None
    try:
        return parse_domain(value).text
    except TargetError:
        return None


# ---------------------------------------------------------------------------------- loading


def default_profiles_path() -> Path:
    return Path(str(resources.files("mamori.respond").joinpath("profiles.yaml")))


def load_profiles(path: str | Path | None = None) -> Profiles:
    """Read a profiles file (the shipped one if ``path`` is None); ``NAME.local.yaml`` beside it,
    if present, is read first so site profiles come before the shipped ones."""
    path = Path(path) if path is not None else default_profiles_path()
    local = path.with_name(path.stem + ".local" + path.suffix)
    out: list[Profile] = []
    for p in ([local] if local.is_file() else []) + [path]:
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ProfileError(f"{p}: cannot read the file ({e.strerror or e})") from e
        out += parse_profiles(text, str(p)).profiles
    return Profiles(out)


def parse_profiles(text: str, source: str = "<profiles>") -> Profiles:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ProfileError(f"{source}: not valid YAML{at}: {getattr(e, 'problem', e)}") from e
    profiles = [_profile(doc, source, n) for n, doc in enumerate(docs)]
    names = [p.name for p in profiles]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise ProfileError(f"{source}: profile {dup!r}: name: used twice")
    return Profiles(profiles)


def _profile(doc: Any, source: str, n: int) -> Profile:
    where = f"{source}: profile {n + 1}"
    if not isinstance(doc, Mapping):
        raise ProfileError(f"{where}: must be a mapping")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{where}: name: missing (every profile needs a name)")
    where = f"{source}: profile {name!r}"

    def fail(key: str, reason: str) -> ProfileError:
        return ProfileError(f"{where}: {key}: {reason}")

    for key in doc:
        if key not in PROFILE_KEYS:
            raise fail(str(key), f"unknown key (known: {', '.join(sorted(PROFILE_KEYS))})")
    match = doc.get("match", "incident")
    if match not in ("incident", "alert"):
        raise fail("match", "must be incident or alert")
    on_success = doc.get("on_success", "continue")
    if on_success not in ("break", "continue"):
        raise fail("on_success", "must be break or continue")
    filters = doc.get("filters")
    if not isinstance(filters, list) or not filters:
        raise fail("filters", "must be a non-empty list (any one filter that holds applies)")
    decisions = doc.get("decisions")
    if not isinstance(decisions, list) or not decisions:
        raise fail("decisions", "must be a non-empty list")
    return Profile(
        name=name,
        match=match,
        filters=tuple(_filter(f, f"filters[{k}]", fail) for k, f in enumerate(filters)),
        decisions=tuple(_proposal(d, f"decisions[{k}]", fail) for k, d in enumerate(decisions)),
        on_success=on_success,
        source=source,
    )


def _filter(item: Any, key: str, fail: Any) -> Filter:
    if item is None:
        return Filter()  # "- {}" or a bare "-": matches everything
    if not isinstance(item, Mapping):
        raise fail(key, "must be a mapping")
    for k in item:
        if k not in FILTER_KEYS:
            raise fail(f"{key}.{k}", f"unknown filter (known: {', '.join(sorted(FILTER_KEYS))})")
    sev = item.get("severity")
    if sev is not None and sev not in SEVERITIES:
        raise fail(f"{key}.severity", f"must be one of {', '.join(SEVERITIES)}")
    conf = item.get("confidence")
    if conf is not None and (
        isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1
    ):
        raise fail(f"{key}.confidence", "must be a number from 0 to 1")
    has = _strings(item.get("has", []), f"{key}.has", fail)
    for h in has:
        if h not in HAS:
            raise fail(f"{key}.has", f"{h!r} is not an entity kind ({', '.join(HAS)})")
    return Filter(
        techniques=_strings(item.get("techniques", []), f"{key}.techniques", fail),
        severity=sev,
        confidence=None if conf is None else float(conf),
        detectors=_strings(item.get("detectors", []), f"{key}.detectors", fail),
        has=has,
    )


def _proposal(item: Any, key: str, fail: Any) -> Proposal:
    if not isinstance(item, Mapping):
        raise fail(key, "must be a mapping")
    for k in item:
        if k not in DECISION_KEYS:
            raise fail(f"{key}.{k}", f"unknown key (known: {', '.join(sorted(DECISION_KEYS))})")
    action = item.get("action")
    if action not in Action.__members__:
        raise fail(f"{key}.action", f"{action!r} is not an action ({', '.join(Action)})")
    action = Action(action)
    target = item.get("target")
    if target not in TARGETS:
        raise fail(f"{key}.target", f"{target!r} is not a target ({', '.join(TARGETS)})")
    if action in IP_ONLY and target == "domains":
        raise fail(f"{key}.target", f"{action} takes addresses; domains are names")
    if action in NAME_ONLY and target in ("attackers", "victims"):
        raise fail(f"{key}.target", f"{action} takes names; {target} are addresses")
    if "ttl" not in item:
        raise fail(f"{key}.ttl", "missing: every decision needs a duration (e.g. 4h)")
    try:
        ttl = parse_duration(item["ttl"])
    except ValueError as e:
        raise fail(f"{key}.ttl", str(e)) from e
    scope = item.get("scope", "edge")
    if not isinstance(scope, str) or not scope:
        raise fail(f"{key}.scope", "must be a non-empty string")
    reason = item.get("reason", "{profile}: {title}")
    if not isinstance(reason, str):
        raise fail(f"{key}.reason", "must be a string")
    try:
        reason.format_map(dict.fromkeys(PLACEHOLDERS, ""))
    except (KeyError, ValueError, IndexError) as e:
        raise fail(
            f"{key}.reason", f"bad placeholder {e} (known: {', '.join(sorted(PLACEHOLDERS))})"
        ) from e
    return Proposal(action, target, ttl, scope, reason)


def _strings(value: Any, key: str, fail: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(key, "must be a string or a list of strings")
    return tuple(value)
