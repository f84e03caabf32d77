"""The guard's policy file: the user's rules of engagement, read once and checked strictly.

A mistake in this file must never widen what mamori may do, so reading it is strict: an unknown key,
a value of the wrong kind or an address that does not parse stops the load with a ``PolicyError``
naming the file, the key and the reason, instead of being ignored. docs/respond.md explains every
key with a worked example.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mamori.respond.decision import Action, Verdict
from mamori.respond.duration import parse_duration
from mamori.respond.targets import (
    DomainTarget,
    IpTarget,
    Span,
    TargetError,
    looks_like_ip,
    parse_domain,
    parse_network,
)

# The groups of protected assets. ``own`` is special: quarantine may act only inside it.
GROUPS = ("own", "critical", "resolvers", "partners")

# Public resolvers that blocking would cut a network off from (added unless
# ``well_known_resolvers: false``): Google, Cloudflare, Quad9, OpenDNS, by address and name.
WELL_KNOWN_RESOLVERS = (
    "8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844", "dns.google",
    "1.1.1.1", "1.0.0.1", "2606:4700:4700::1111", "2606:4700:4700::1001",
    "one.one.one.one", "cloudflare-dns.com",
    "9.9.9.9", "149.112.112.112", "2620:fe::fe", "2620:fe::9", "dns.quad9.net",
    "208.67.222.222", "208.67.220.220", "2620:119:35::35", "2620:119:53::53",
)  # fmt: skip

# Never a target whatever the file says: the host itself and "no address".
ALWAYS_PROTECTED = ("127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128", "localhost")

KEYS = {
    "protected",
    "well_known_resolvers",
    "max_prefix",
    "min_domain_labels",
    "min_confidence",
    "approval",
    "max_per_minute",
    "over_rate",
    "max_ttl",
    "over_ttl",
    "actions",
}


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file, the key and the reason."""

    def __init__(self, source: str, key: str, reason: str, line: int | None = None) -> None:
        at = f" (line {line})" if line else ""
        super().__init__(f"{source}: {key}{at}: {reason}" if key else f"{source}: {reason}")
        self.source, self.key, self.reason, self.line = source, key, reason, line


class AssetSet:
    """Protected networks and domains, answering "does this target touch one?" in O(log n).

    A target touches a protected network when the two share any address (a supernet of a
    protected range would block it too); it touches a protected domain when either is the other or
    a subdomain of it (blocking ``org`` blocks ``example.org``).
    """

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        self.entries: list[tuple[str, str]] = []  # (group, original text)
        self.networks: list[Span] = []
        spans: dict[int, list[tuple[int, int, int]]] = {4: [], 6: []}
        self.domains: dict[str, int] = {}
        self.parents: dict[str, int] = {}  # every proper parent of a protected domain
        for group, text in entries:
            i = len(self.entries)
            self.entries.append((group, text))
            if looks_like_ip(text):
                target = parse_network(text)
                self.networks.append(target.span)
                for form in target.forms:
                    spans[form.version].append((form.lo, form.hi, i))
            else:
                labels = parse_domain(text).labels
                self.domains.setdefault(".".join(labels), i)
                for k in range(1, len(labels)):
                    self.parents.setdefault(".".join(labels[k:]), i)
        self._index = {v: _Spans(s) for v, s in spans.items()}

    def touching_ip(self, target: IpTarget) -> tuple[str, str] | None:
        """The first protected entry sharing an address with any form of ``target``."""
        for form in target.forms:
            hit = self._index[form.version].touching(form.lo, form.hi)
            if hit is not None:
                return self.entries[hit]
        return None

    def touching_domain(self, target: DomainTarget) -> tuple[str, str] | None:
        labels = target.labels
        for k in range(len(labels)):  # the name itself, then each parent
            hit = self.domains.get(".".join(labels[k:]))
            if hit is not None:
                return self.entries[hit]
        hit = self.parents.get(target.text)  # the target is a parent of a protected name
        return None if hit is None else self.entries[hit]

    def contains_ip(self, target: IpTarget) -> bool:
        """Every address of ``target`` lies inside one network entry (quarantine inside ``own``)."""
        return any(
            form.version == net.version and net.lo <= form.lo and form.hi <= net.hi
            for form in target.forms
            for net in self.networks
        )


class _Spans:
    """Closed integer intervals sorted by start, with a running maximum of ends: an interval
    touching [a, b] exists iff the widest-reaching one starting at or before b ends at or after a."""

    def __init__(self, spans: list[tuple[int, int, int]]) -> None:
        spans.sort()
        self.starts = [s for s, _, _ in spans]
        self.reach: list[tuple[int, int]] = []  # (max end so far, its entry)
        best = (-1, -1)
        for _, end, i in spans:
            if end > best[0]:
                best = (end, i)
            self.reach.append(best)

    def touching(self, a: int, b: int) -> int | None:
        k = bisect_right(self.starts, b) - 1
        if k >= 0 and self.reach[k][0] >= a:
            return self.reach[k][1]
        return None


@dataclass(frozen=True)
class Policy:
    """Rules of engagement, compiled for the guard (see docs/respond.md for each key)."""

    source: str
    own: AssetSet
    guarded: AssetSet  # critical, resolvers, partners and the always-protected: never a target
    max_prefix: Mapping[int, int]  # IP version -> shortest prefix length that may be blocked
    min_domain_labels: int
    min_confidence: Mapping[Action, float]
    approval: frozenset[Action]
    max_per_minute: int
    over_rate: Verdict
    max_ttl: Mapping[Action, int]
    over_ttl: str  # "clamp" or "deny"
    actions: frozenset[Action]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; every problem is a ``PolicyError``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError(source, "", f"cannot read the file ({e.strerror or e})") from e
    return parse_policy(text, source)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise PolicyError(source, "", f"not valid YAML{at}: {getattr(e, 'problem', e)}") from e
    if not isinstance(data, dict):
        raise PolicyError(source, "", "the file must be a mapping of policy keys")
    try:
        return build_policy(data, source)
    except PolicyError as e:
        line = _key_lines(text).get(e.key)
        if line is None or e.line is not None:
            raise
        raise PolicyError(e.source, e.key, e.reason, line) from e


def _key_lines(text: str) -> dict[str, int]:
    """The line of every key path (``protected.own[2]``) in a YAML text, for error messages."""
    out: dict[str, int] = {}

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{path}.{k.value}" if path else str(k.value)
                out.setdefault(key, k.start_mark.line + 1)
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                out.setdefault(f"{path}[{i}]", item.start_mark.line + 1)
                walk(item, f"{path}[{i}]")

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out
    if root is not None:
        walk(root, "")
    return out


def build_policy(data: Mapping[str, Any], source: str = "<policy>") -> Policy:
    def fail(key: str, reason: str) -> PolicyError:
        return PolicyError(source, key, reason)

    unknown = sorted(set(map(str, data)) - KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (known: {', '.join(sorted(KEYS))})")

    protected = data.get("protected")
    if protected is None:
        raise fail("protected", "missing: name at least your own ranges under protected.own")
    if not isinstance(protected, dict):
        raise fail("protected", "must be a mapping of groups (own, critical, resolvers, partners)")
    own_entries: list[tuple[str, str]] = []
    guarded_entries: list[tuple[str, str]] = [("always", t) for t in ALWAYS_PROTECTED]
    for group, items in protected.items():
        key = f"protected.{group}"
        if group not in GROUPS:
            raise fail(key, f"unknown group (known: {', '.join(GROUPS)})")
        if items is None:
            continue
        if not isinstance(items, list):
            raise fail(key, "must be a list of addresses, networks or domains")
        for n, item in enumerate(items):
            text = _asset(item, lambda r, n=n, key=key: fail(f"{key}[{n}]", r))
            (own_entries if group == "own" else guarded_entries).append((group, text))
    if not own_entries:
        raise fail("protected.own", "missing or empty: name your own ranges and domains")
    wkr = data.get("well_known_resolvers", True)
    if not isinstance(wkr, bool):
        raise fail("well_known_resolvers", "must be true or false")
    if wkr:
        guarded_entries += [("resolvers", t) for t in WELL_KNOWN_RESOLVERS]

    max_prefix = {4: 24, 6: 48}
    mp = data.get("max_prefix", {})
    if not isinstance(mp, dict):
        raise fail("max_prefix", "must be a mapping: {ipv4: 24, ipv6: 48}")
    for name, value in mp.items():
        version = {"ipv4": 4, "ipv6": 6}.get(str(name))
        if version is None:
            raise fail(f"max_prefix.{name}", "unknown key (known: ipv4, ipv6)")
        top = 32 if version == 4 else 128
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise fail(f"max_prefix.{name}", f"must be a prefix length from 0 to {top}")
        max_prefix[version] = value

    labels = data.get("min_domain_labels", 2)
    if isinstance(labels, bool) or not isinstance(labels, int) or labels < 1:
        raise fail("min_domain_labels", "must be a whole number, at least 1")

    min_conf = _per_action(data.get("min_confidence", 0.5), "min_confidence", _confidence, fail)
    max_ttl = _per_action(data.get("max_ttl", "24h"), "max_ttl", _duration, fail)

    approval = frozenset(_actions(data.get("approval", []), "approval", fail))
    actions = frozenset(_actions(data.get("actions", list(Action)), "actions", fail))

    rate = data.get("max_per_minute", 60)
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
        raise fail("max_per_minute", "must be a whole number, 0 or more")
    over_rate = data.get("over_rate", "needs_approval")
    if over_rate not in ("needs_approval", "deny"):
        raise fail("over_rate", "must be needs_approval or deny")
    over_ttl = data.get("over_ttl", "clamp")
    if over_ttl not in ("clamp", "deny"):
        raise fail("over_ttl", "must be clamp or deny")

    return Policy(
        source=source,
        own=AssetSet(own_entries),
        guarded=AssetSet(guarded_entries),
        max_prefix=max_prefix,
        min_domain_labels=labels,
        min_confidence=min_conf,
        approval=approval,
        max_per_minute=rate,
        over_rate=Verdict(over_rate),
        max_ttl=max_ttl,
        over_ttl=over_ttl,
        actions=actions,
        raw=dict(data),
    )


def _asset(item: object, fail: Any) -> str:
    if not isinstance(item, str):
        raise fail(f"{item!r} must be a string: an address, a network or a domain")
    text = item.strip()
    if looks_like_ip(text):
        return text
    if any(c in text for c in "/:") or text.replace(".", "").isdigit():
        raise fail(f"{item!r} is not a valid address or network")
    try:
        return parse_domain(text).text
    except TargetError as e:
        raise fail(f"{item!r} is neither an address, a network nor a domain ({e})") from e


def _confidence(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"{value!r} is not between 0 and 1")
    return float(value)


def _duration(value: object) -> int:
    return parse_duration(value)


def _per_action(value: object, key: str, read: Any, fail: Any) -> dict[Action, Any]:
    """One value for every action, or a mapping with ``default`` and per-action overrides."""
    if not isinstance(value, dict):
        try:
            one = read(value)
        except ValueError as e:
            raise fail(key, str(e)) from e
        return dict.fromkeys(Action, one)
    out: dict[Action, Any] = {}
    default = None
    for name, item in value.items():
        sub = f"{key}.{name}"
        if name != "default" and name not in Action.__members__:
            raise fail(sub, f"unknown action (known: default, {', '.join(Action)})")
        try:
            parsed = read(item)
        except ValueError as e:
            raise fail(sub, str(e)) from e
        if name == "default":
            default = parsed
        else:
            out[Action(name)] = parsed
    missing = [a for a in Action if a not in out]
    if missing and default is None:
        raise fail(key, f"no value for {', '.join(missing)}: give them or a default")
    return {a: out.get(a, default) for a in Action}


def _actions(value: object, key: str, fail: Any) -> list[Action]:
    if not isinstance(value, list):
        raise fail(key, f"must be a list of actions ({', '.join(Action)})")
    out = []
    for n, name in enumerate(value):
        if name not in Action.__members__:
            raise fail(f"{key}[{n}]", f"{name!r} is not an action ({', '.join(Action)})")
        out.append(Action(name))
    return out


__all__ = ["GROUPS", "AssetSet", "Policy", "PolicyError", "build_policy", "load_policy"]
