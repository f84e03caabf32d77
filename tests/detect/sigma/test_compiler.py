"""The compiler's Sigma semantics: fixed cases per modifier, and a property against a reference.

The reference matcher below is the specification read literally, one event and one value at a
time in plain Python (wildcards by dynamic programming, no regex), so the vectorised compiler is
checked against something that shares none of its code.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.rule import SigmaRule

from mamori.detect.sigma import load_pipeline
from mamori.detect.sigma.compiler import Unsupported, compile_rule

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sigma_helpers import rule_dict, run_rule, winevt

Match = Callable[..., list[str]]


# --- fixed cases ----------------------------------------------------------------------------------


def test_plain_values_are_case_insensitive_whole_values(match: Match) -> None:
    events = [{"Image": "C:\\Windows\\CMD.EXE"}, {"Image": "C:\\Windows\\cmd.exe.bak"}, {}]
    assert match({"sel": {"Image": "c:\\windows\\cmd.exe"}, "condition": "sel"}, events) == ["e0"]


def test_contains_startswith_endswith(match: Match) -> None:
    events = [{"CommandLine": "powershell -enc AAA"}, {"CommandLine": "cmd /c whoami"}]
    assert match({"s": {"CommandLine|contains": "-ENC"}, "condition": "s"}, events) == ["e0"]
    assert match({"s": {"CommandLine|startswith": "CMD "}, "condition": "s"}, events) == ["e1"]
    assert match({"s": {"CommandLine|endswith": "whoami"}, "condition": "s"}, events) == ["e1"]


def test_endswith_lists_of_file_names(match: Match) -> None:
    events = [
        {"Image": "C:\\Windows\\System32\\CMD.EXE"},
        {"Image": "cmd.exe"},  # no path: does not end with "\\cmd.exe"
        {"Image": "C:\\x\\notcmd.exe"},
        {"Image": "C:\\x\\pwsh.exe\\"},
        {"Image": "D:\\tools\\a\\b.exe"},
    ]
    names = {"s": {"Image|endswith": ["\\cmd.exe", "\\pwsh.exe", "\\a\\b.exe"]}}
    assert match({**names, "condition": "s"}, events) == ["e0", "e4"]


def test_hash_lists(match: Match) -> None:
    md5, imp = "0" * 31 + "1", "ab" * 16
    events = [
        {"Hashes": f"SHA1={'f' * 40},MD5={md5.upper()},IMPHASH={'c' * 32}"},
        {"Hashes": f"MD5={'9' * 32},IMPHASH={imp}"},
        {"Hashes": f"MD5={'9' * 32}"},
        {"Hashes": f"MD5={md5}0"},  # one digit more: another hash that begins with it
        {},
    ]
    det = {"s": {"Hashes|contains": [f"MD5={md5}", f"IMPHASH={imp}", "sha1=" + "f" * 40]}}
    assert match({**det, "condition": "s"}, events) == ["e0", "e1", "e3"]
    short = {"s": {"Hashes|contains": [f"MD5={md5}", f"IMPHASH={imp}"]}, "condition": "s"}
    assert match(short, events) == ["e0", "e1", "e3"]


def test_all_links_values_with_and(match: Match) -> None:
    events = [{"CommandLine": "a b c"}, {"CommandLine": "a c"}]
    det = {"s": {"CommandLine|contains|all": ["a", "b"]}, "condition": "s"}
    assert match(det, events) == ["e0"]


def test_wildcards_and_escapes(match: Match) -> None:
    events = [{"F": "ab*c"}, {"F": "abXc"}, {"F": "ab?c"}, {"F": "abc"}]
    assert match({"s": {"F": "ab?c"}, "condition": "s"}, events) == ["e0", "e1", "e2"]
    assert match({"s": {"F": "ab\\*c"}, "condition": "s"}, events) == ["e0"]
    assert match({"s": {"F": "ab*c"}, "condition": "s"}, events) == ["e0", "e1", "e2", "e3"]


def test_cased_is_exact(match: Match) -> None:
    events = [{"F": "Secret"}, {"F": "secret"}]
    assert match({"s": {"F|cased": "Secret"}, "condition": "s"}, events) == ["e0"]


def test_regex_flags(match: Match) -> None:
    events = [{"F": "Line1\nLINE2"}, {"F": "line2"}]
    assert match({"s": {"F|re": "^line2$"}, "condition": "s"}, events) == ["e1"]
    assert match({"s": {"F|re|i": "^line2$"}, "condition": "s"}, events) == ["e1"]
    assert match({"s": {"F|re|i|m": "^line2$"}, "condition": "s"}, events) == ["e0", "e1"]
    assert match({"s": {"F|re|s": "1.LINE"}, "condition": "s"}, events) == ["e0"]


def test_regex_the_engine_cannot_run_is_reported() -> None:
    # pySigma (RE2) accepts \\Q...\\E quoting; Polars' Rust engine does not: said, not run.
    rule = SigmaRule.from_dict(rule_dict({"s": {"F|re": "\\Qa.b\\E"}, "condition": "s"}))
    with pytest.raises(Unsupported, match="unrecognized escape"):
        compile_rule(rule, "x.yml", load_pipeline())


def test_null_exists_and_empty(match: Match) -> None:
    events = [{"F": "x"}, {"F": ""}, {}]
    assert match({"s": {"F": None}, "condition": "s"}, events) == ["e2"]
    assert match({"s": {"F": ""}, "condition": "s"}, events) == ["e1"]
    assert match({"s": {"F|exists": True}, "condition": "s"}, events) == ["e0", "e1"]
    assert match({"s": {"F|exists": False}, "condition": "s"}, events) == ["e2"]
    # A filter on a field the event lacks does not exclude it.
    det = {"s": {"G": "y"}, "f": {"F": "x"}, "condition": "not f"}
    assert match(det, events) == ["e1", "e2"]


def test_numeric_comparisons(match: Match) -> None:
    events = [{"N": "5"}, {"N": "10"}, {"N": "x"}, {}]
    assert match({"s": {"N|gt": 5}, "condition": "s"}, events) == ["e1"]
    assert match({"s": {"N|gte": 5}, "condition": "s"}, events) == ["e0", "e1"]
    assert match({"s": {"N|lt": 10}, "condition": "s"}, events) == ["e0"]
    assert match({"s": {"N|lte": 10}, "condition": "s"}, events) == ["e0", "e1"]
    assert match({"s": {"N": 10}, "condition": "s"}, events) == ["e1"]


def test_cidr(match: Match) -> None:
    events = [{"IpAddress": "10.1.2.3"}, {"IpAddress": "192.168.1.5"}, {"IpAddress": "100.1.1.1"}]
    det = {"s": {"IpAddress|cidr": ["10.0.0.0/8", "192.168.0.0/23"]}, "condition": "s"}
    assert match(det, events) == ["e0", "e1"]


def test_windash(match: Match) -> None:
    events = [{"C": "net user /add"}, {"C": "net user -add"}, {"C": "net user \u2013add"}]
    det = {"s": {"C|windash|contains": " -add"}, "condition": "s"}
    assert match(det, events) == ["e0", "e1", "e2"]


def test_base64offset(match: Match) -> None:
    plain = "secret command"
    encoded = [base64.b64encode(pad.encode() + plain.encode()).decode() for pad in ("", "x", "xy")]
    events = [{"C": f"powershell -e {e}"} for e in encoded] + [{"C": "powershell -e AAAA"}]
    det = {"s": {"C|base64offset|contains": plain}, "condition": "s"}
    assert match(det, events) == ["e0", "e1", "e2"]


def test_fieldref(match: Match) -> None:
    events = [{"A": "X.exe", "B": "x.EXE"}, {"A": "a", "B": "b"}, {"A": "abc", "B": "b"}]
    assert match({"s": {"A|fieldref": "B"}, "condition": "s"}, events) == ["e0"]
    assert match({"s": {"A|fieldref|contains": "B"}, "condition": "s"}, events) == ["e0", "e2"]


def test_keywords_search_values_not_across_fields(match: Match) -> None:
    events = [{"A": 'say "Mimikatz" now'}, {"A": "mimi", "B": "katz"}, {"A": "C:\\x\\y"}]
    assert match({"k": ["mimikatz"], "condition": "k"}, events) == ["e0"]
    assert match({"k": ["mimi*katz"], "condition": "k"}, events) == ["e0"]
    assert match({"k": ["c:\\x\\y"], "condition": "k"}, events) == ["e2"]


def test_selectors(match: Match) -> None:
    events = [{"A": "1"}, {"B": "1"}, {"A": "1", "B": "1"}]
    det = {"sel_a": {"A": "1"}, "sel_b": {"B": "1"}}
    assert match({**det, "condition": "1 of sel_*"}, events) == ["e0", "e1", "e2"]
    assert match({**det, "condition": "all of sel_*"}, events) == ["e2"]
    assert match({**det, "condition": "all of them"}, events) == ["e2"]
    assert match({**det, "condition": "sel_a and not sel_b"}, events) == ["e0"]


def test_typed_columns_and_service_channel() -> None:
    frame = winevt([{"A": "1"}] * 2, event_id=4624)
    other = winevt([{"A": "1"}], channel="System", event_id=4624)
    rule = rule_dict({"s": {"EventID": 4624, "A": "1"}, "condition": "s"})
    assert run_rule(rule, {"winevt": frame}) == ["e0", "e1"]
    assert run_rule(rule, {"winevt": other}) == []  # service: security reads the Security channel
    rule = rule_dict({"s": {"EventID": [1, 2]}, "condition": "s"})
    assert run_rule(rule, {"winevt": frame}) == []


def test_process_creation_reads_sysmon_and_security_4688() -> None:
    sysmon = winevt(
        [{"Image": "C:\\x\\evil.exe"}],
        channel="Microsoft-Windows-Sysmon/Operational",
        event_id=1,
    )
    audit = winevt([{"NewProcessName": "C:\\x\\evil.exe"}], event_id=4688)
    rule = rule_dict(
        {"s": {"Image|endswith": "\\evil.exe"}, "condition": "s"},
        logsource={"product": "windows", "category": "process_creation"},
    )
    assert run_rule(rule, {"winevt": sysmon}) == ["e0"]
    assert run_rule(rule, {"winevt": audit}) == ["e0"]


def test_placeholders_and_unmapped_logsources_are_reported() -> None:
    rule = SigmaRule.from_dict(rule_dict({"s": {"A": "%admins%"}, "condition": "s"}))
    rule_p = SigmaRule.from_dict(rule_dict({"s": {"A|expand": "%admins%"}, "condition": "s"}))
    with pytest.raises(Unsupported, match="placeholder"):
        compile_rule(rule_p, "x.yml", load_pipeline())
    assert compile_rule(rule, "x.yml", load_pipeline())  # without |expand it is a plain value
    nowhere = SigmaRule.from_dict(
        rule_dict({"s": {"A": "1"}, "condition": "s"}, logsource={"product": "aix"})
    )
    with pytest.raises(Unsupported, match="no pipeline source"):
        compile_rule(nowhere, "x.yml", load_pipeline())


# --- the property ---------------------------------------------------------------------------------

STAR, ONE = object(), object()
FIELDS = ("Image", "CommandLine", "User")


def tokens(value: str) -> list[Any]:
    """A Sigma string as characters and wildcards: ``\\`` escapes ``*``, ``?`` and itself."""
    out: list[Any] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value) and value[i + 1] in "*?\\":
            out.append(value[i + 1])
            i += 2
            continue
        out.append(STAR if c == "*" else ONE if c == "?" else c)
        i += 1
    return out


def wildcard(pattern: Sequence[Any], text: str) -> bool:
    """Does ``pattern`` (characters, STAR, ONE) match the whole of ``text``?"""
    ok = [True] + [False] * len(text)  # ok[j]: pattern so far matches text[:j]
    for p in pattern:
        if p is STAR:
            for j in range(1, len(text) + 1):
                ok[j] = ok[j] or ok[j - 1]
        else:
            ok = [False] + [ok[j] and (p is ONE or p == text[j]) for j in range(len(text))]
    return ok[len(text)]


def ref_value(value: str | None, modifier: str, event: Mapping[str, str], name: str) -> bool:
    if value is None:
        return name not in event
    if name not in event:
        return False
    cased = "cased" in modifier
    pattern = tokens(value if cased else value.lower())
    text = event[name] if cased else event[name].lower()
    if "contains" in modifier or "endswith" in modifier:
        pattern = [STAR, *pattern]
    if "contains" in modifier or "startswith" in modifier:
        pattern = [*pattern, STAR]
    return wildcard(pattern, text)


def ref_selection(selection: Mapping[str, Any], event: Mapping[str, str]) -> bool:
    """Keys are AND-ed; a key's values OR-ed (AND-ed with ``|all``)."""
    results = []
    for key, values in selection.items():
        name, _, modifier = key.partition("|")
        values = values if isinstance(values, list) else [values]
        hits = [ref_value(v, modifier, event, name) for v in values]
        results.append(all(hits) if "all" in modifier.split("|") else any(hits))
    return all(results)


def ref_keywords(values: list[str], event: Mapping[str, str]) -> bool:
    return any(
        wildcard([STAR, *tokens(v.lower()), STAR], text.lower())
        for v in values
        for text in event.values()
    )


CONDITIONS: dict[str, Callable[[bool, bool], bool]] = {
    "sel1": lambda a, b: a,
    "sel1 and not sel2": lambda a, b: a and not b,
    "sel1 or sel2": lambda a, b: a or b,
    "1 of sel*": lambda a, b: a or b,
    "all of sel*": lambda a, b: a and b,
    "not sel1": lambda a, b: not a,
}

sigma_text = st.text(alphabet="aAbB*?\\. -", max_size=4)
event_text = st.text(alphabet='aAbB*?\\. -"É', max_size=6)
modifiers = st.sampled_from(
    ["", "|contains", "|startswith", "|endswith", "|contains|all", "|cased", "|endswith|cased"]
)


@st.composite
def selections(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=2, unique=True))
    out: dict[str, Any] = {}
    for name in names:
        modifier = draw(modifiers)
        if modifier == "" and draw(st.booleans()) and draw(st.booleans()):
            out[name] = None
            continue
        values = draw(st.lists(sigma_text, min_size=1, max_size=3))
        out[name + modifier] = values if len(values) > 1 else values[0]
    return out


events_strategy = st.lists(
    st.dictionaries(st.sampled_from(FIELDS), event_text, max_size=3), min_size=1, max_size=8
)


@settings(max_examples=200)
@given(
    sel1=selections(),
    sel2=selections(),
    condition=st.sampled_from(sorted(CONDITIONS)),
    events=events_strategy,
)
def test_fields_match_the_reference(
    sel1: dict[str, Any], sel2: dict[str, Any], condition: str, events: list[dict[str, str]]
) -> None:
    detection = {"sel1": sel1, "sel2": sel2, "condition": condition}
    got = run_rule(rule_dict(detection), {"winevt": winevt(events)})
    want = [
        f"e{i}"
        for i, e in enumerate(events)
        if CONDITIONS[condition](ref_selection(sel1, e), ref_selection(sel2, e))
    ]
    assert got == want


@settings(max_examples=150)
@given(words=st.lists(sigma_text.filter(bool), min_size=1, max_size=3), events=events_strategy)
def test_keywords_match_the_reference(words: list[str], events: list[dict[str, str]]) -> None:
    got = run_rule(rule_dict({"k": words, "condition": "k"}), {"winevt": winevt(events)})
    assert got == [f"e{i}" for i, e in enumerate(events) if ref_keywords(words, e)]


segment = st.text(alphabet="aAbB.-", min_size=0, max_size=3)
paths = st.lists(segment, min_size=1, max_size=3).map("\\".join)


@settings(max_examples=100)
@given(
    names=st.lists(segment.map(lambda s: "\\" + s), min_size=2, max_size=4),
    values=st.lists(st.one_of(paths, st.none()), min_size=1, max_size=8),
)
def test_file_name_lists_match_the_reference(names: list[str], values: list[str | None]) -> None:
    events = [{} if v is None else {"Image": v} for v in values]
    got = run_rule(
        rule_dict({"s": {"Image|endswith": names}, "condition": "s"}), {"winevt": winevt(events)}
    )
    want = [f"e{i}" for i, e in enumerate(events) if ref_selection({"Image|endswith": names}, e)]
    assert got == want


hexes = st.text(alphabet="0123456789abcdefABCDEF", min_size=31, max_size=33)


@settings(max_examples=100)
@given(
    wanted=st.lists(hexes.map(lambda h: f"MD5={h}"), min_size=2, max_size=4),
    values=st.lists(
        st.lists(
            st.sampled_from(["MD5", "IMPHASH"]).flatmap(
                lambda alg: hexes.map(lambda h: f"{alg}={h}")
            ),
            min_size=1,
            max_size=2,
        ).map(",".join),
        min_size=1,
        max_size=6,
    ),
)
def test_hash_lists_match_the_reference(wanted: list[str], values: list[str]) -> None:
    events = [{"Hashes": v} for v in values]
    det = {"Hashes|contains": wanted}
    got = run_rule(rule_dict({"s": det, "condition": "s"}), {"winevt": winevt(events)})
    assert got == [f"e{i}" for i, e in enumerate(events) if ref_selection(det, e)]
