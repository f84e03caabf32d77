"""TLP 2.0: the official STIX markings, reading the TLP of what arrives, and the release rule.

Why a module of its own: every door out of the house (``share export``, TAXII push, the TAXII
server's GET) must ask the same question, "may this object go to this partner?", and get the same
answer with the same reason. The answer follows FIRST TLP 2.0:

- ``TLP:RED`` never leaves (it is for the eyes of the people present, not for an organisation).
- ``TLP:AMBER`` and ``TLP:AMBER+STRICT`` go only to partners named on the object (an analyst's
  need-to-know decision, recorded beside the object, never guessed).
- ``TLP:CLEAR`` and ``TLP:GREEN`` go where the site's :class:`ReleasePolicy` says: every partner,
  nobody, or a listed community.
- Nothing is re-shared above its marking: an object keeps the strictest TLP it ever carried
  (:func:`effective`), and what a partner sent at AMBER or stricter goes back to nobody but that
  partner (``origin``), because TLP 2.0 lets a recipient pass AMBER only inside its own
  organisation.

The marking-definition objects and ids are the ones OASIS publishes for the TLP 2.0 extension
(``oasis-open/cti-stix-common-objects``, ``extension-definition-specifications/tlp-2.0``); TLP 1.0
ids from STIX 2.1 section 7.2.1.4 are read too, with WHITE meaning CLEAR.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class TlpError(ValueError):
    """A TLP name or marking that cannot be understood; the message says which and why."""


class Tlp(IntEnum):
    """TLP 2.0 levels, ordered from least to most restrictive (so ``max`` is "strictest")."""

    CLEAR = 0
    GREEN = 1
    AMBER = 2
    AMBER_STRICT = 3
    RED = 4

    @property
    def label(self) -> str:
        """Lower-case name as mamori stores it (``"amber+strict"``), the intel table's spelling."""
        return self.name.lower().replace("_", "+")

    @property
    def stix_name(self) -> str:
        """``"TLP:AMBER+STRICT"``: the marking-definition's ``name`` and the MISP tag, upper-cased."""
        return "TLP:" + self.name.replace("_", "+")

    @property
    def misp_tag(self) -> str:
        """The MISP taxonomy tag (``tlp:amber+strict``)."""
        return "tlp:" + self.label

    @property
    def marking_id(self) -> str:
        """The OASIS TLP 2.0 marking-definition id."""
        return TLP2_MARKING_IDS[self]

    def __str__(self) -> str:
        return self.stix_name


TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_CREATED = "2022-10-01T00:00:00.000Z"
TLP2_MARKING_IDS: dict[Tlp, str] = {
    Tlp.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
# TLP 1.0 as STIX 2.1 itself defines it (WHITE, GREEN, AMBER, RED); read, never written.
TLP1_MARKING_IDS: dict[str, Tlp] = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": Tlp.CLEAR,
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": Tlp.GREEN,
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": Tlp.AMBER,
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": Tlp.RED,
}
KNOWN_MARKING_IDS: dict[str, Tlp] = {
    **TLP1_MARKING_IDS,
    **{mid: level for level, mid in TLP2_MARKING_IDS.items()},
}


def parse_tlp(text: object) -> Tlp:
    """``"TLP:WHITE"``, ``"tlp:green"``, ``"amber+strict"``, ``"AMBER_STRICT"``, a :class:`Tlp`
    → the TLP 2.0 level (WHITE is CLEAR); anything else raises :class:`TlpError`."""
    if isinstance(text, Tlp):
        return text
    if not isinstance(text, str):
        raise TlpError(f"TLP must be a name, not {type(text).__name__} {text!r}")
    name = text.strip().lower().removeprefix("tlp:").strip().replace("_", "+").replace(" ", "")
    if name == "white":
        return Tlp.CLEAR
    for level in Tlp:
        if level.label == name:
            return level
    known = ", ".join(t.label for t in Tlp)
    raise TlpError(f"unknown TLP {text!r}; known: {known} (TLP 1.0 white = clear)")


def strictest(levels: Iterable[Tlp | str]) -> Tlp | None:
    """The most restrictive of ``levels`` (None when there are none)."""
    parsed = [parse_tlp(x) for x in levels]
    return max(parsed) if parsed else None


def effective(own: Tlp | str | None, requested: Tlp | str) -> Tlp:
    """The marking an object leaves with: what the user asked for, never below what it carries.

    This is the "never re-shared above its marking" rule at export time: exporting with
    ``--tlp clear`` cannot lower an indicator a partner sent us at AMBER.
    """
    req = parse_tlp(requested)
    return req if own is None else max(parse_tlp(own), req)


def marking_definition(level: Tlp | str) -> dict[str, Any]:
    """The OASIS TLP 2.0 marking-definition object, byte for byte what the extension publishes."""
    lv = parse_tlp(level)
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": lv.marking_id,
        "created": TLP2_CREATED,
        "name": lv.stix_name,
        "extensions": {
            TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": lv.label}
        },
    }


def marking_definition_tlp(obj: Mapping[str, Any]) -> Tlp | None:
    """TLP of a ``marking-definition`` object, whatever its form: a known id, the TLP 2.0
    extension (``tlp_2_0``), STIX 2.1 ``definition_type: tlp`` (TLP 1.0), or a ``TLP:`` name.
    None when the object is not a TLP marking (a statement, a copyright, ...)."""
    if obj.get("type") != "marking-definition":
        return None
    if (known := KNOWN_MARKING_IDS.get(str(obj.get("id")))) is not None:
        return known
    ext = (obj.get("extensions") or {}).get(TLP2_EXTENSION_ID)
    candidates: list[object] = []
    if isinstance(ext, Mapping):
        candidates.append(ext.get("tlp_2_0"))
    definition = obj.get("definition")
    if obj.get("definition_type") == "tlp" and isinstance(definition, Mapping):
        candidates.append(definition.get("tlp"))
    name = obj.get("name")
    if isinstance(name, str) and name.strip().lower().startswith("tlp:"):
        candidates.append(name)
    for cand in candidates:
        try:
            return parse_tlp(cand)
        except TlpError:
            continue
    return None


def tlp_of(obj: Mapping[str, Any], markings: Mapping[str, Tlp] | None = None) -> Tlp | None:
    """The TLP an incoming STIX object carries: the strictest of its ``object_marking_refs``
    that are TLP markings (known ids, or ``markings`` read from the same bundle with
    :func:`bundle_markings`). None when it carries no TLP marking.

    Two different TLP markings on one object are answered with the strictest, never an error:
    a partner's mistake must not make us share more.
    """
    table = dict(KNOWN_MARKING_IDS)
    if markings:
        table.update(markings)
    found = [table[r] for r in obj.get("object_marking_refs") or [] if r in table]
    if not found:
        return None
    return max(found)


def bundle_markings(objects: Iterable[Mapping[str, Any]]) -> dict[str, Tlp]:
    """marking-definition id → TLP for every TLP marking-definition in a bundle's objects."""
    out: dict[str, Tlp] = {}
    for o in objects:
        if (lv := marking_definition_tlp(o)) is not None:
            out[str(o["id"])] = lv
    return out


# --- the release rule --------------------------------------------------------------------------

ALL = "all"
NONE = "none"
Audience = str | frozenset[str]  # "all", "none", or the partner names that receive it


def _audience(value: object, key: str) -> Audience:
    if isinstance(value, str):
        if value.lower() in (ALL, NONE):
            return value.lower()
        raise TlpError(f"share policy {key}: {value!r} is not 'all', 'none' or a list of partners")
    if isinstance(value, Iterable):
        names = frozenset(str(x) for x in value)
        if not all(names):
            raise TlpError(f"share policy {key}: empty partner name")
        return names
    raise TlpError(f"share policy {key}: {value!r} is not 'all', 'none' or a list of partners")


@dataclass(frozen=True, slots=True)
class ReleasePolicy:
    """What the site decides about CLEAR and GREEN; AMBER and RED are not configurable.

    ``clear`` and ``green`` are each ``"all"`` (every registered partner), ``"none"``, or a
    frozenset of partner names (a community). The defaults share CLEAR and GREEN with every
    registered partner: a partner is someone the site chose to trust with community-level data.
    """

    clear: Audience = ALL
    green: Audience = ALL

    def __post_init__(self) -> None:
        object.__setattr__(self, "clear", _audience(self.clear, "clear"))
        object.__setattr__(self, "green", _audience(self.green, "green"))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> ReleasePolicy:
        """From a config table such as ``{"clear": "all", "green": ["cert-a", "cert-b"]}``."""
        data = dict(data or {})
        unknown = set(data) - {"clear", "green"}
        if unknown:
            raise TlpError(f"share policy: unknown keys {sorted(unknown)} (known: clear, green)")
        return cls(**data)


DEFAULT_POLICY = ReleasePolicy()


@dataclass(frozen=True, slots=True)
class Release:
    """A release decision; true when the object may go. ``reason`` is for the audit and the CLI."""

    allowed: bool
    reason: str
    tlp: Tlp | None = field(default=None)

    def __bool__(self) -> bool:
        return self.allowed


def _in(audience: Audience, partner: str) -> bool:
    if audience == ALL:
        return True
    if audience == NONE:
        return False
    return partner in audience


def may_release(
    marking: Tlp | str | None,
    partner: str,
    named_partners: Collection[str] = (),
    config: ReleasePolicy | None = None,
    *,
    origin: str | None = None,
) -> Release:
    """May an object marked ``marking`` go to ``partner``? A :class:`Release`, truthy when yes.

    ``named_partners``: partners an analyst named on this object (the AMBER audience).
    ``origin``: the partner the object came from, None for our own objects. An unmarked object
    (``marking`` None) never leaves: an object without a TLP has not been judged shareable.
    """
    policy = config or DEFAULT_POLICY
    if marking is None:
        return Release(False, "no TLP marking: not judged shareable")
    try:
        level = parse_tlp(marking)
    except TlpError as exc:
        return Release(False, f"unreadable TLP marking: {exc}")
    if not partner:
        return Release(False, "no partner named", level)
    if level is Tlp.RED:
        return Release(False, "TLP:RED never leaves", level)
    if level in (Tlp.AMBER, Tlp.AMBER_STRICT):
        if origin is not None and partner != origin:
            return Release(
                False, f"{level} received from {origin!r}: not re-shared outside our org", level
            )
        if origin is not None and partner == origin:
            return Release(True, f"{level} returned to its originator {origin!r}", level)
        if partner in named_partners:
            return Release(True, f"{level}: {partner!r} is named on the object", level)
        return Release(False, f"{level}: {partner!r} is not named on the object", level)
    audience = policy.clear if level is Tlp.CLEAR else policy.green
    if _in(audience, partner):
        return Release(True, f"{level}: policy shares it with {partner!r}", level)
    return Release(False, f"{level}: policy does not share it with {partner!r}", level)


@dataclass(frozen=True, slots=True)
class Filtered:
    """A bundle's objects split for one partner: what goes, and what stays with why."""

    released: list[dict[str, Any]]
    withheld: list[tuple[str, str]]  # (object id, reason)


_STRUCTURAL = ("marking-definition", "extension-definition")


def _refs(obj: Mapping[str, Any]) -> list[str]:
    """Ids an object points at (``*_ref``, ``*_refs``), markings excluded (they are public)."""
    out: list[str] = []
    for key, value in obj.items():
        if key in ("object_marking_refs", "created_by_ref", "id") or key == "granular_markings":
            continue
        if key.endswith("_ref") and isinstance(value, str):
            out.append(value)
        elif key.endswith("_refs") and isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
    return out


def filter_objects(
    objects: Iterable[Mapping[str, Any]],
    partner: str,
    config: ReleasePolicy | None = None,
    *,
    named: Mapping[str, Collection[str]] | None = None,
    origins: Mapping[str, str] | None = None,
) -> Filtered:
    """The objects of a bundle that may go to ``partner``, each judged by :func:`may_release`
    on its own TLP marking; an object that refers to a withheld one is withheld too (a
    relationship to a RED indicator would otherwise reveal its id, and deterministic ids can be
    guessed from content). Marking definitions and extension definitions are public and go
    only when something released refers to them. Identities are judged like any object, but a
    withheld creator does not withhold what it created: ``created_by_ref`` then names an id the
    partner cannot resolve, which STIX allows.

    ``named``: object id → partners named on it; ``origins``: object id → partner it came from.
    """
    objs = [dict(o) for o in objects]
    markings = bundle_markings(objs)
    named = named or {}
    origins = origins or {}
    verdict: dict[str, Release] = {}
    for o in objs:
        if o.get("type") in _STRUCTURAL:
            continue
        oid = str(o.get("id"))
        verdict[oid] = may_release(
            tlp_of(o, markings), partner, named.get(oid, ()), config, origin=origins.get(oid)
        )
    # Withhold referrers of withheld objects until nothing changes.
    changed = True
    while changed:
        changed = False
        for o in objs:
            oid = str(o.get("id"))
            rel = verdict.get(oid)
            if rel is None or not rel:
                continue
            blocked = next((r for r in _refs(o) if r in verdict and not verdict[r]), None)
            if blocked is not None:
                verdict[oid] = Release(False, f"refers to withheld {blocked}", rel.tlp)
                changed = True
    released = [o for o in objs if o.get("type") not in _STRUCTURAL and verdict[str(o["id"])]]
    needed: set[str] = set()
    for o in released:
        needed.update(o.get("object_marking_refs") or [])
        if isinstance(o.get("created_by_ref"), str):
            needed.add(o["created_by_ref"])
        needed.update(_refs(o))
        for ext in o.get("extensions") or {}:
            needed.add(ext)
    for o in objs:
        if o.get("type") == "marking-definition" and o.get("id") in needed:
            needed.update((o.get("extensions") or {}).keys())
    structural = [o for o in objs if o.get("type") in _STRUCTURAL and o.get("id") in needed]
    withheld = [(oid, r.reason) for oid, r in verdict.items() if not r]
    return Filtered(structural + released, withheld)
