"""Importing the shared feeds: counts, TLP, provenance, idempotence, clear errors."""

from __future__ import annotations

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
