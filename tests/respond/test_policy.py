"""The policy file: strict validation with errors naming the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mamori.respond.decision import Action, Verdict
from mamori.respond.policy import PolicyError, build_policy, load_policy, parse_policy
from mamori.respond.targets import parse_network

GOOD = """
protected:
  own: [192.0.2.0/24, example.org]
  partners: [198.51.100.0/24]
min_confidence: {default: 0.6, quarantine: 0.9}
max_ttl: {default: 1d, quarantine: 4h}
approval: [quarantine]
max_prefix: {ipv4: 28}
"""


def test_a_good_file_compiles(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    p = load_policy(path)
    assert p.source == str(path)
    assert p.min_confidence[Action.block_ip] == 0.6 and p.min_confidence[Action.quarantine] == 0.9
    assert p.max_ttl[Action.quarantine] == 14400 and p.max_ttl[Action.notify] == 86400
    assert p.max_prefix == {4: 28, 6: 48}
    assert p.approval == {Action.quarantine} and p.over_rate is Verdict.needs_approval
    assert p.own.touching_ip(parse_network("192.0.2.77")) == ("own", "192.0.2.0/24")
    assert p.guarded.touching_ip(parse_network("8.8.8.8")) is not None  # well-known resolver


def test_well_known_resolvers_can_be_left_out() -> None:
    p = parse_policy("protected: {own: [10.0.0.0/8]}\nwell_known_resolvers: false\n")
    assert p.guarded.touching_ip(parse_network("8.8.8.8")) is None
    assert p.guarded.touching_ip(parse_network("127.0.0.1")) is not None  # always protected


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("protected: {own: [10.0.0.0/8]}\nmax_ttl: forever\n", "max_ttl", "not a duration"),
        ("protected: {own: [10.0.0.0/8]}\nmax_tll: 4h\n", "max_tll", "unknown key"),
        ("protected: {own: [10.0.0.300/8]}\n", "protected.own[0]", "not a valid address"),
        ("protected: {own: [10.0.0.0/8], friends: [1.2.3.4]}\n", "protected.friends", "unknown group"),
        ("protected: {critical: [1.2.3.4]}\n", "protected.own", "missing"),
        ("max_ttl: 4h\n", "protected", "missing"),
        ("protected: {own: [10.0.0.0/8]}\nmin_confidence: {block_ip: 1.5}\n", "min_confidence.block_ip", "between 0 and 1"),
        ("protected: {own: [10.0.0.0/8]}\nmin_confidence: {block_ip: 0.5}\n", "min_confidence", "give them or a default"),
        ("protected: {own: [10.0.0.0/8]}\napproval: [ban]\n", "approval[0]", "not an action"),
        ("protected: {own: [10.0.0.0/8]}\nmax_prefix: {ipv4: 33}\n", "max_prefix.ipv4", "0 to 32"),
        ("protected: {own: [10.0.0.0/8]}\nover_ttl: ignore\n", "over_ttl", "clamp or deny"),
        ("protected: {own: [10.0.0.0/8]}\nmax_per_minute: -1\n", "max_per_minute", "0 or more"),
        ("protected: {own: [42]}\n", "protected.own[0]", "must be a string"),
        ("protected: {own: ['bad name.org']}\n", "protected.own[0]", "neither"),
    ],
)  # fmt: skip
def test_errors_name_file_key_and_reason(text: str, key: str, reason: str) -> None:
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "site.yaml")
    assert e.value.source == "site.yaml" and e.value.key == key
    assert reason in e.value.reason
    assert str(e.value).startswith(f"site.yaml: {key}")


def test_errors_give_the_line_of_the_key() -> None:
    text = "protected:\n  own:\n    - 10.0.0.0/8\n    - 10.0.0.300\nmax_ttl: 4h\n"
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "site.yaml")
    assert e.value.line == 4
    assert str(e.value).startswith("site.yaml: protected.own[1] (line 4): '10.0.0.300'")


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("protected: [\n")
    with pytest.raises(PolicyError, match=r"bad.yaml: not valid YAML at line \d"):
        load_policy(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(PolicyError, match="must be a mapping"):
        load_policy(tmp_path / "list.yaml")


values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 200) | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    ["protected", "max_prefix", "min_confidence", "approval", "max_ttl", "over_ttl",
     "max_per_minute", "over_rate", "actions", "well_known_resolvers", "min_domain_labels", "x"]
)  # fmt: skip


@given(st.dictionaries(keys, values, max_size=6), st.lists(values, max_size=3))
def test_any_mapping_either_compiles_or_is_refused_with_a_policy_error(
    data: dict, own: list
) -> None:
    if "protected" not in data:
        data["protected"] = {"own": own}
    try:
        p = build_policy(data, "fuzz.yaml")
    except PolicyError as e:
        assert str(e).startswith("fuzz.yaml: ")
    else:  # what compiled is complete: every action has its numbers
        assert set(p.min_confidence) == set(Action) == set(p.max_ttl)
        assert all(v > 0 for v in p.max_ttl.values())
        yaml.safe_dump(dict(p.raw))  # and the raw mapping is still plain data
