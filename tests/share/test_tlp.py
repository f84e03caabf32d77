"""TLP 2.0 markings, parsing and the release rule: no object leaves above its TLP."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stix2validator import ValidationOptions, validate_string

from mamori.share.tlp import (
    TLP1_MARKING_IDS,
    TLP2_EXTENSION_ID,
    ReleasePolicy,
    Tlp,
    TlpError,
    bundle_markings,
    effective,
    filter_objects,
    marking_definition,
    marking_definition_tlp,
    may_release,
    parse_tlp,
    tlp_of,
)

PARTNERS = ["cert-a", "cert-b", "isac-c", "vendor-d"]
partners = st.sampled_from(PARTNERS)
levels = st.sampled_from(list(Tlp))
audiences = st.one_of(
    st.sampled_from(["all", "none"]), st.frozensets(partners, max_size=len(PARTNERS))
)
policies = st.builds(ReleasePolicy, clear=audiences, green=audiences)


def test_marking_definitions_are_the_oasis_tlp2_objects() -> None:
    # The published ids of oasis-open/cti-stix-common-objects, extension-definition-specifications
    # /tlp-2.0; any drift from them makes every partner read our markings as unknown.
    assert {lv.label: lv.marking_id for lv in Tlp} == {
        "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
    }
    assert TLP2_EXTENSION_ID == "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
    amber_strict = marking_definition("amber+strict")
    assert amber_strict["name"] == "TLP:AMBER+STRICT"
    assert amber_strict["extensions"][TLP2_EXTENSION_ID]["tlp_2_0"] == "amber+strict"
    assert amber_strict["created"] == "2022-10-01T00:00:00.000Z"


@pytest.mark.parametrize("level", list(Tlp))
def test_marking_definition_passes_the_oasis_validator(level: Tlp) -> None:
    bundle = {
        "type": "bundle",
        "id": "bundle--6b3bbd7c-7d0b-4a3f-9b0a-1d8e0f2f1a10",
        "objects": [marking_definition(level)],
    }
    result = validate_string(json.dumps(bundle), ValidationOptions(version="2.1"))
    assert result.is_valid, [str(e) for e in result.errors]
    assert marking_definition_tlp(marking_definition(level)) is level


def test_order_is_strictness() -> None:
    assert Tlp.CLEAR < Tlp.GREEN < Tlp.AMBER < Tlp.AMBER_STRICT < Tlp.RED
    assert effective("amber", "clear") is Tlp.AMBER
    assert effective(None, "green") is Tlp.GREEN
    assert effective("green", "red") is Tlp.RED


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("TLP:WHITE", Tlp.CLEAR),
        ("white", Tlp.CLEAR),
        ("tlp:clear", Tlp.CLEAR),
        ("TLP:GREEN", Tlp.GREEN),
        ("Amber", Tlp.AMBER),
        ("TLP:AMBER+STRICT", Tlp.AMBER_STRICT),
        ("amber_strict", Tlp.AMBER_STRICT),
        (" tlp:red ", Tlp.RED),
    ],
)
def test_parse_tlp(text: str, level: Tlp) -> None:
    assert parse_tlp(text) is level


@pytest.mark.parametrize("bad", ["", "tlp:blue", "amber+", "TLP:EX:CHR", 3])
def test_parse_tlp_rejects_with_reason(bad: object) -> None:
    with pytest.raises(TlpError, match="TLP"):
        parse_tlp(bad)


@given(levels)
def test_parse_round_trips_every_spelling(level: Tlp) -> None:
    for text in (level.label, level.stix_name, level.misp_tag, level.name):
        assert parse_tlp(text) is level


def test_tlp1_markings_are_read_with_white_as_clear() -> None:
    ids = {lv: mid for mid, lv in TLP1_MARKING_IDS.items()}
    assert tlp_of({"object_marking_refs": [ids[Tlp.CLEAR]]}) is Tlp.CLEAR
    assert tlp_of({"object_marking_refs": [ids[Tlp.RED]]}) is Tlp.RED
    tlp1_white = {
        "type": "marking-definition",
        "id": "marking-definition--00000000-0000-4000-8000-000000000001",
        "definition_type": "tlp",
        "definition": {"tlp": "white"},
    }
    assert marking_definition_tlp(tlp1_white) is Tlp.CLEAR
    assert marking_definition_tlp({"type": "marking-definition", "name": "Copyright"}) is None


def test_strictest_marking_wins_and_bundle_markings_count() -> None:
    custom = {
        "type": "marking-definition",
        "id": "marking-definition--9a0c1f55-0000-4000-8000-000000000002",
        "name": "TLP:AMBER+STRICT",
    }
    marks = bundle_markings([custom])
    obj = {"object_marking_refs": [Tlp.GREEN.marking_id, custom["id"]]}
    assert tlp_of(obj, marks) is Tlp.AMBER_STRICT
    assert tlp_of({"object_marking_refs": ["marking-definition--unknown"]}) is None


def test_release_rules_with_reasons() -> None:
    policy = ReleasePolicy(clear="all", green=frozenset({"cert-a"}))
    red = may_release("red", "cert-a", ["cert-a"], policy)
    assert not red and "never leaves" in red.reason
    assert may_release("amber", "cert-a", ["cert-a"], policy)
    no = may_release("amber+strict", "cert-b", ["cert-a"], policy)
    assert not no and "not named" in no.reason
    assert may_release("green", "cert-a", [], policy)
    assert not may_release("green", "cert-b", [], policy)
    assert may_release("clear", "vendor-d", [], policy)
    assert not may_release(None, "cert-a", [], policy)
    assert not may_release("clear", "cert-a", [], ReleasePolicy(clear="none"))
    # Received from a partner at AMBER: back to its originator only, even if someone named others.
    assert not may_release("amber", "cert-b", ["cert-b"], policy, origin="cert-a")
    assert may_release("amber", "cert-a", [], policy, origin="cert-a")


def test_policy_from_config_rejects_nonsense() -> None:
    p = ReleasePolicy.from_mapping({"green": ["cert-a", "cert-b"]})
    assert p.green == frozenset({"cert-a", "cert-b"}) and p.clear == "all"
    with pytest.raises(TlpError, match="unknown keys"):
        ReleasePolicy.from_mapping({"amber": "all"})
    with pytest.raises(TlpError, match="green"):
        ReleasePolicy.from_mapping({"green": "everyone"})


def _allowed_by_tlp(level: Tlp, partner: str, named: frozenset[str], origin: str | None) -> bool:
    """What TLP 2.0 itself permits, independent of the site's CLEAR/GREEN choice."""
    if level is Tlp.RED:
        return False
    if level >= Tlp.AMBER:
        return partner == origin if origin else partner in named
    return True


@given(
    level=levels,
    partner=partners,
    named=st.frozensets(partners),
    policy=policies,
    origin=st.one_of(st.none(), partners),
)
def test_no_release_above_tlp(
    level: Tlp, partner: str, named: frozenset[str], policy: ReleasePolicy, origin: str | None
) -> None:
    rel = may_release(level, partner, named, policy, origin=origin)
    if rel:
        assert _allowed_by_tlp(level, partner, named, origin), rel.reason
        if level <= Tlp.GREEN:
            audience = policy.clear if level is Tlp.CLEAR else policy.green
            assert audience == "all" or (audience != "none" and partner in audience)
    assert rel.reason


def _object(i: int, level: Tlp | None, refs: list[int]) -> dict[str, object]:
    obj: dict[str, object] = {
        "type": "relationship" if refs else "indicator",
        "id": f"{'relationship' if refs else 'indicator'}--00000000-0000-4000-8000-{i:012d}",
    }
    if level is not None:
        obj["object_marking_refs"] = [level.marking_id]
    if refs:
        obj["source_ref"] = f"indicator--00000000-0000-4000-8000-{refs[0]:012d}"
        obj["target_ref"] = f"indicator--00000000-0000-4000-8000-{refs[-1]:012d}"
    return obj


bundles = st.lists(st.one_of(st.none(), levels), min_size=1, max_size=8).flatmap(
    lambda lv: st.tuples(
        st.just(lv),
        st.lists(
            st.tuples(
                st.one_of(st.none(), levels),
                st.integers(0, len(lv) - 1),
                st.integers(0, len(lv) - 1),
            ),
            max_size=6,
        ),
    )
)


@given(
    bundle=bundles,
    partner=partners,
    policy=policies,
    named_sets=st.lists(st.frozensets(partners), min_size=14, max_size=14),
)
def test_no_object_in_a_filtered_bundle_leaves_above_its_tlp(
    bundle: tuple[list[Tlp | None], list[tuple[Tlp | None, int, int]]],
    partner: str,
    policy: ReleasePolicy,
    named_sets: list[frozenset[str]],
) -> None:
    indicator_levels, rels = bundle
    objs = [_object(i, lv, []) for i, lv in enumerate(indicator_levels)]
    objs += [_object(100 + j, lv, [a, b]) for j, (lv, a, b) in enumerate(rels)]
    objs += [marking_definition(lv) for lv in Tlp]
    named = {str(o["id"]): named_sets[k % len(named_sets)] for k, o in enumerate(objs)}
    out = filter_objects(objs, partner, policy, named=named)
    released_ids = {o["id"] for o in out.released}
    for o in out.released:
        if o["type"] == "marking-definition":
            assert o["id"] in {m for r in out.released for m in r.get("object_marking_refs", [])}
            continue
        level = tlp_of(o)
        assert level is not None and level is not Tlp.RED
        assert _allowed_by_tlp(level, partner, named[o["id"]], None)
        for ref in (o.get("source_ref"), o.get("target_ref")):
            assert ref is None or ref in released_ids, "released object points at a withheld one"
    withheld = {oid for oid, _ in out.withheld}
    judged = {o["id"] for o in objs if o["type"] != "marking-definition"}
    assert withheld | (released_ids & judged) == judged and not (withheld & released_ids)
