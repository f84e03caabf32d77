"""Importing the shared feeds: counts, TLP, provenance, idempotence, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from mamori.intel.schema import IntelFormatError
from mamori.intel.store import import_files, load_file, read

TI = "threat-intel"
STIX = f"{TI}/stix2.1-examples/examples"


def _skipped_patterns(result) -> int:  # type: ignore[no-untyped-def]
    """Indicator objects that gave nothing to match (the parser's skip count)."""
    hit = {i.object_id for i in result.indicators}
    return len({oid for oid, _ in result.skipped} - hit)


@pytest.mark.parametrize(
    ("rel", "fmt", "counts", "skipped"),
    [
        (f"{STIX}/threat-reports/apt1.json", "stix", {"cidr": 4, "domain": 3, "md5": 3}, 2),
        (f"{STIX}/threat-reports/poisonivy.json", "stix", {"ip": 40, "domain": 24}, 2),
        (f"{STIX}/indicators-for-C2-with-COA.json", "stix", {"ip": 1, "sha256": 1}, 0),
        (f"{STIX}/malicious-email-indicator-with-attachment.json", "stix", {}, 2),
        (f"{TI}/misp-events/tests/reportlab_testfiles/to_delete2.json", "misp", {"ip": 93, "md5": 16, "sha256": 2, "sha1": 2}, None),
        (f"{TI}/misp-events/tests/reportlab_testfiles/HTML_event.json", "misp", {"url": 5, "domain": 1, "sha1": 1, "sha256": 1}, None),
        (f"{TI}/misp-events/tests/mispevent_testfiles/existing_event.json", "misp", {"sha1": 37, "domain": 19, "ip": 12}, None),
        (f"{TI}/ipsum/ipsum.txt", "list", {"ip": 120430}, 0),
    ],
)  # fmt: skip
def test_shared_feeds_import_with_expected_counts(
    data_dir: Path, rel: str, fmt: str, counts: dict[str, int], skipped: int | None
) -> None:
    result = load_file(data_dir / rel, "clear")
    assert result.format == fmt
    got: dict[str, int] = {}
    for ind in result.indicators:
        got[ind.type] = got.get(ind.type, 0) + 1
    assert got == counts
    if skipped is not None:
        assert _skipped_patterns(result) == skipped


def test_poisonivy_keeps_links_and_reports_the_bad_domain(data_dir: Path) -> None:
    result = load_file(data_dir / STIX / "threat-reports/poisonivy.json", "green")
    assert any("'domain autuo.xicp.net' is not a valid domain" in r for _, r in result.skipped)
    ind = next(i for i in result.indicators if i.value == "219.76.208.163")
    assert ind.tlp == "green"  # no marking in the bundle: the default given on import
    assert any(r.startswith("malware--") for r in ind.related)
    assert any(r.startswith("campaign--") for r in ind.related)


def test_apt1_indicator_names_the_actor_and_intrusion_set(data_dir: Path) -> None:
    result = load_file(data_dir / STIX / "threat-reports/apt1.json", "clear")
    related = {r.split("--")[0] for i in result.indicators for r in i.related}
    assert {"threat-actor", "intrusion-set", "malware"} <= related
    assert any(i.kill_chain_phases for i in result.indicators)


def test_misp_tlp_confidence_and_provenance(data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / TI / "misp-events/tests/reportlab_testfiles/to_delete2.json"
    import_files([path], tmp_path, tlp="red", source="misp-test")
    table = read(tmp_path)
    assert set(table["tlp"]) == {"clear"}  # the event's tlp:white tag beats the import default
    assert set(table["confidence"]) == {30}  # threat level 3 (low)
    assert set(table["source"]) == {"misp-test"}
    assert set(table["source_file"]) == {str(path.resolve())}
    assert table["object_id"].str.len_chars().min() == 36  # attribute uuids
    assert any("Lazarus Group" in r for r in table["related"].explode().drop_nulls())


def test_stix_marking_sets_tlp(tmp_path: Path) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text(
        '{"type":"bundle","id":"bundle--1","objects":[{"type":"indicator","id":"indicator--1",'
        '"pattern_type":"stix","confidence":85,"valid_from":"2020-01-01T00:00:00Z",'
        '"object_marking_refs":["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"],'
        '"pattern":"[network-traffic:dst_ref.value = \'198.51.100.7\' AND network-traffic:dst_port = 443]'
        " OR [ipv6-addr:value IN ('2001:db8::/48', '2001:db8::1')]\"}]}"
    )
    import_files([bundle], tmp_path / "s", tlp="clear")
    t = read(tmp_path / "s").sort("value")
    assert t["tlp"].to_list() == ["amber"] * 3
    assert t["confidence"].to_list() == [85] * 3
    assert t.select("type", "value", "port").rows() == [
        ("ip", "198.51.100.7", 443), ("cidr", "2001:db8::/48", None), ("ip", "2001:db8::1", None)
    ]  # fmt: skip


def test_reimport_is_idempotent(data_dir: Path, tmp_path: Path) -> None:
    files = [
        data_dir / STIX / "threat-reports/apt1.json",
        data_dir / TI / "misp-events/tests/reportlab_testfiles/HTML_event.json",
    ]
    import_files(files, tmp_path)
    first = read(tmp_path)
    import_files(files, tmp_path)
    again = read(tmp_path)
    assert first.height == again.height > 0
    assert first.equals(again)  # ids, and even the first import time, unchanged


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("broken.json", '{"type": "bundle", "objects": [', "not valid JSON"),
        ("odd.json", '{"hello": 1}', "not a MISP event"),
        ("noobjects.json", '{"type": "bundle", "id": "bundle--x"}', "without an 'objects' list"),
        ("junk.txt", "this is not\nan indicator list\n", "no line is an IP, CIDR, domain or URL"),
    ],
)
def test_malformed_file_gives_one_clear_error(
    tmp_path: Path, name: str, content: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(IntelFormatError) as exc:
        import_files([path], tmp_path / "store")
    assert str(path) in str(exc.value) and reason in str(exc.value)
    assert read(tmp_path / "store").height == 0  # nothing written


def test_plain_list_comments_and_types(tmp_path: Path) -> None:
    path = tmp_path / "l.txt"
    path.write_text("# c\n10.0.0.0/8  # net\nEvil.COM.\n192.0.2.1\t3\nhttp://bad.example/x?y=1\n")
    import_files([path], tmp_path / "s")
    t = read(tmp_path / "s").sort("type")
    assert t.select("type", "value").rows() == [
        ("cidr", "10.0.0.0/8"), ("domain", "evil.com"), ("ip", "192.0.2.1"), ("url", "bad.example/x?y=1")
    ]  # fmt: skip
    assert t.filter(pl.col("type") == "ip")["confidence"].item() == 50


# Bad parts of a feed: each is skipped with its reason and the rest of the file imported. Found
# by fuzz/fuzz_intel.py; before, each raised out of the importer (a traceback at the user, or a
# ValueError the command printed without the file's name) and nothing of the file was kept.
_GOOD = {
    "type": "indicator", "spec_version": "2.1", "id": "indicator--0d2e7b4c-1c3e-4c5e-9a7f-3f1c2b8e9d01",
    "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
    "pattern": "[ipv4-addr:value = '198.51.100.7']", "pattern_type": "stix",
    "valid_from": "2024-01-01T00:00:00Z",
}  # fmt: skip


def _bundle(tmp_path: Path, *bad: object) -> Path:
    path = tmp_path / "feed.json"
    objects = [_GOOD, *bad]
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": objects}))
    return path


def _bad(field: str, value: object) -> dict[str, object]:
    return {**_GOOD, "id": "indicator--0d2e7b4c-1c3e-4c5e-9a7f-3f1c2b8e9d02", field: value}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("kill_chain_phases", ["command-and-control"], "kill_chain_phases is not a list of phases"),
        ("name", {"en": "x"}, "name is not a string"),
        ("confidence", "high", "confidence is not an integer from 0 to 100"),
        ("confidence", 250, "confidence is not an integer from 0 to 100"),
        ("object_marking_refs", [["marking-definition--x"]], "object_marking_refs is not a list"),
        ("labels", "c2", "labels is not a list of strings"),
    ],
)
def test_a_malformed_stix_indicator_is_skipped_with_the_validators_message(
    tmp_path: Path, field: str, value: object, reason: str
) -> None:
    bad = _bad(field, value)
    result = load_file(_bundle(tmp_path, bad), "clear")
    assert [i.value for i in result.indicators] == ["198.51.100.7"]  # the good one kept
    (_, why), *_ = [s for s in result.skipped if s[0] == bad["id"]]
    assert reason in why and "stix2-validator:" in why and "\n" not in why
    import_files([tmp_path / "feed.json"], tmp_path / "store")  # and the store takes the rest
    assert read(tmp_path / "store")["value"].to_list() == ["198.51.100.7"]


def test_stix_objects_without_an_id_are_skipped_not_the_file(tmp_path: Path) -> None:
    result = load_file(_bundle(tmp_path, {"type": "indicator"}, 7, {"id": ["a"]}), "clear")
    assert [i.value for i in result.indicators] == ["198.51.100.7"]
    assert [s[0] for s in result.skipped] == ["objects[1]", "objects[2]", "objects[3]"]


def test_a_pattern_nested_past_the_limit_is_a_skipped_indicator(tmp_path: Path) -> None:
    deep = "[" + "(" * 5000 + "ipv4-addr:value = '192.0.2.1'" + ")" * 5000 + "]"
    result = load_file(_bundle(tmp_path, _bad("pattern", deep)), "clear")
    assert [i.value for i in result.indicators] == ["198.51.100.7"]
    assert any("nested deeper" in why for _, why in result.skipped)


def test_odd_relationships_and_related_objects_do_not_stop_the_import(tmp_path: Path) -> None:
    malware = {"type": "malware", "id": "malware--1", "name": 7, "external_references": ["x", 1]}
    rels = [
        {"type": "relationship", "id": "relationship--1", "source_ref": _GOOD["id"],
         "target_ref": "malware--1", "relationship_type": ["indicates"]},
        {"type": "relationship", "id": "relationship--2", "source_ref": ["x"], "target_ref": {}},
    ]  # fmt: skip
    result = load_file(_bundle(tmp_path, malware, *rels), "clear")
    assert result.indicators[0].related == ["malware--1|"]


def test_misp_bad_parts_are_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    event = {
        "Event": {
            "uuid": "e1", "info": 42, "Tag": [{"name": 5}, {"name": "tlp:green"}, "tlp:red"],
            "Galaxy": ["x", {"type": "threat-actor", "GalaxyCluster": [{"value": ["a"]}, 3]}],
            "Attribute": [
                {"type": "ip-dst", "value": "198.51.100.9", "uuid": "a1"},
                {"type": ["ip-dst"], "value": "198.51.100.10", "uuid": "a2"},
                {"type": "ip-dst|port", "value": "198.51.100.11|\u0663\u0664", "uuid": "a3"},
                "not an attribute",
            ],
            "Object": ["not an object", {"Attribute": {"type": "ip-dst"}}],
        }
    }  # fmt: skip
    path = tmp_path / "event.json"
    path.write_text(json.dumps([event, 5]))
    result = load_file(path, "amber")
    assert [(i.value, i.port, i.tlp, i.name) for i in result.indicators] == [
        ("198.51.100.9", None, "green", "42"), ("198.51.100.11", None, "green", "42"),
    ]  # fmt: skip
    reasons = dict(result.skipped)
    assert reasons["a2"] == "an Attribute without a 'type' and a 'value'"
    assert reasons["e1"] == "an Object that is not an object"
    assert reasons["e1/3"] == "an Attribute that is not an object"
    assert reasons[str(path)] == "1 list element(s) that are not MISP events"


def test_a_list_count_in_other_digits_is_no_confidence(tmp_path: Path) -> None:
    path = tmp_path / "l.txt"
    path.write_text("192.0.2.1 \u00b2\n192.0.2.2 3\n")
    result = load_file(path, "clear")
    assert [(i.value, i.confidence) for i in result.indicators] == [
        ("192.0.2.1", None), ("192.0.2.2", 50)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[" + "1" * 5000 + "]", "not usable JSON"),
    ],
    ids=["deep", "long-number"],
)
def test_json_past_what_python_reads_is_one_clear_error(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(IntelFormatError) as exc:
        load_file(path, "clear")
    assert str(exc.value).startswith(str(path)) and reason in str(exc.value)
