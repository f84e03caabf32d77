"""Pipelines as data: the built-in mappings, a site's own file, and errors naming the file."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from sigma.rule import SigmaRule

from mamori.detect.sigma import CompiledRules, evaluate, load_pipeline
from mamori.detect.sigma.compiler import compile_rule
from mamori.detect.sigma.pipeline import PipelineError
from mamori.schema import schema_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sigma_helpers import rule_dict

SYSMON = "Microsoft-Windows-Sysmon/Operational"


def test_sysmon_categories_read_their_event_ids() -> None:
    pipeline = load_pipeline()
    expect = {
        "process_creation": [1],
        "network_connection": [3],
        "image_load": [7],
        "process_access": [10],
        "file_event": [11],
        "registry_set": [13],
        "pipe_created": [17, 18],
        "dns_query": [22],
    }
    for category, ids in expect.items():
        sysmon = [
            s
            for s in pipeline.sources_for(("windows", category, None))
            if s.where.get("channel") == (SYSMON,)
        ]
        assert len(sysmon) == 1, category
        assert list(sysmon[0].where["event_id"]) == ids, category
        assert sysmon[0].table.name == "winevt"
    security = pipeline.sources_for(("windows", "process_creation", None))
    audit = [s for s in security if s.where.get("channel") == ("Security",)]
    assert audit[0].fields["Image"] == "NewProcessName"


def test_every_source_names_a_real_table_and_columns() -> None:
    for source in load_pipeline().sources:
        names = schema_of(source.table.name).names
        for column in source.where:
            assert column in names, (source.id, column)
        for column in source.table.columns.values():
            assert column in names, (source.table.name, column)


def jsonlog(objects: list[dict[str, object]], dataset: str) -> pl.DataFrame:
    n = len(objects)
    return pl.DataFrame(
        {
            "ts": [datetime(2026, 1, 1, tzinfo=UTC)] * n,
            "uid": [f"e{i}" for i in range(n)],
            "file": ["x.json"] * n,
            "record": list(range(1, n + 1)),
            "host": ["web1"] * n,
            "dataset": [dataset] * n,
            "data": [json.dumps(o) for o in objects],
        },
        schema=pl.from_arrow(schema_of("jsonlog").empty_table()).schema,  # type: ignore[union-attr]
    )


def test_a_sites_own_pipeline_file_adds_sources(tmp_path: Path) -> None:
    extra = tmp_path / "site.yml"
    extra.write_text(
        "name: site\n"
        "sources:\n"
        "  - {logsource: {product: acme, service: vpn}, table: jsonlog,\n"
        "     where: {dataset: [acme-vpn]}, fields: {user: account.name}}\n"
    )
    pipeline = load_pipeline([extra])
    rule = SigmaRule.from_dict(
        rule_dict(
            {"sel": {"user": "mallory", "status|gte": 400}, "condition": "sel"},
            logsource={"product": "acme", "service": "vpn"},
        )
    )
    units = compile_rule(rule, "r.yml", pipeline)
    rows = jsonlog(
        [
            {"account": {"name": "Mallory"}, "status": 401},
            {"account": {"name": "mallory"}, "status": 200},
            {"account": {"name": "alice"}, "status": 403},
        ],
        "acme-vpn",
    )
    other = jsonlog([{"account": {"name": "mallory"}, "status": 401}], "other")
    compiled = CompiledRules(tuple(units), (units[0].rule,), ())
    assert evaluate(compiled, {"jsonlog": rows})["uid"].to_list() == ["e0"]
    assert evaluate(compiled, {"jsonlog": other}).height == 0
    assert not load_pipeline().sources_for(("acme", None, "vpn"))  # the built-ins are untouched


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [{logsource: {product: x}, table: nowhere}]\n", "unknown table 'nowhere'"),
        ("sources: [{table: winevt}]\n", "expected a mapping with 'logsource'"),
        ("sources: [{logsource: {vendor: x}, table: winevt}]\n", "unknown logsource keys"),
        ("sources: [unclosed\n", "cannot read"),
    ],
)
def test_errors_name_the_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(text)
    with pytest.raises(PipelineError, match=message) as err:
        load_pipeline([bad])
    assert str(bad) in str(err.value)


def test_network_rules_read_the_lakes_dns_table_lists_included() -> None:
    base = pl.from_arrow(schema_of("dns").empty_table())
    rows = pl.DataFrame(
        {
            "ts": [datetime(2026, 1, 1, tzinfo=UTC)] * 3,
            "uid": ["e0", "e1", "e2"],
            "orig_h": ["10.0.0.5"] * 3,
            "resp_h": ["10.0.0.1"] * 3,
            "query": ["a.example", "b.example", "c.example"],
            "qtype_name": ["TXT", "TXT", "A"],
            "answers": [["ok", "IEX (New-Object Net.WebClient)"], None, ["iex"]],
        }
    )
    dns = pl.concat([base, rows], how="diagonal_relaxed").select(base.columns)  # type: ignore[union-attr]
    rule = SigmaRule.from_dict(
        rule_dict(
            {
                "sel": {"record_type": "TXT", "answer|contains": "iex"},
                "gone": {"answer": None},
                "condition": "sel or gone",
            },
            logsource={"category": "dns"},
        )
    )
    units = compile_rule(rule, "r.yml", load_pipeline())
    matches = evaluate(CompiledRules(tuple(units), (units[0].rule,), ()), {"dns": dns})
    assert matches["uid"].to_list() == ["e0", "e1"]
    assert matches["src"].to_list() == ["10.0.0.5", "10.0.0.5"]
