"""The ``intel.match`` detector: an empty store is quiet; Zeek's Intel whitelisting test is
reproduced on its trace (upload.wikimedia.org seen in 8 DNS requests and 12 HTTP Host headers)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mamori.detect.detectors.intel_match import IntelMatchParams
from mamori.detect.engine import run_detectors
from mamori.flows.pipeline import tables_of
from mamori.intel.store import import_files
from mamori.schema import TABLES, schema_of

TEST = "scripts.policy.frameworks.intel.whitelisting"


def _frames(capture: Path) -> dict[str, pl.LazyFrame]:
    tables, stats = tables_of([capture])
    assert stats[0].error is None
    frames = {t: pl.from_arrow(schema_of(t).empty_table()).lazy() for t in TABLES}
    frames.update({k: pl.from_arrow(v).lazy() for k, v in tables.items()})  # type: ignore[misc]
    return frames  # type: ignore[return-value]


def _zeek_intel(path: Path) -> pl.DataFrame:
    rows = [ln.split("\t") for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return pl.DataFrame(
        {
            "orig_p": [int(r[3]) for r in rows],
            "indicator": [r[6] for r in rows],
            "where": [r[8] for r in rows],
        }
    )


def test_empty_store_raises_no_alert_and_no_error(data_dir: Path, tmp_path: Path) -> None:
    frames = _frames(data_dir / "zeek-btest/Traces/wikipedia.pcap")
    run = run_detectors(
        frames,
        {"intel.match": IntelMatchParams(store=str(tmp_path / "none"))},
        only=["intel.match"],
    )
    assert run.failed == {} and run.alerts.height == 0


def test_zeek_intel_whitelisting_trace_is_reproduced(data_dir: Path, tmp_path: Path) -> None:
    zeek = _zeek_intel(data_dir / "zeek-btest/Baseline" / TEST / "intel.log")
    assert set(zeek["indicator"]) == {"upload.wikimedia.org"}
    feed = tmp_path / "intel.txt"
    feed.write_text("# Zeek's test feed, source1\nupload.wikimedia.org\n")
    import_files([feed], tmp_path / "store", tlp="green", source="source1")
    frames = _frames(data_dir / "zeek-btest/Traces/wikipedia.pcap")
    run = run_detectors(
        frames,
        {"intel.match": IntelMatchParams(store=str(tmp_path / "store"))},
        only=["intel.match"],
    )
    assert run.failed == {}
    alert = run.alerts.row(0, named=True)
    assert run.alerts.height == 1  # one indicator, one internal host
    assert alert["src"] == "141.142.220.118"
    assert alert["count"] == zeek.height == 20  # 8 DNS::IN_REQUEST + 12 HTTP::IN_HOST_HEADER
    assert "upload.wikimedia.org" in alert["summary"] and "source1" in alert["summary"]
    assert "TLP:GREEN" in alert["summary"] and "dns, http" in alert["summary"]
    # the evidence is the same connections Zeek's intel.log names (uids differ; ports do not)
    conn = frames["conn"].filter(pl.col("uid").is_in(alert["evidence"])).collect()
    assert set(conn["orig_p"].to_list()) == set(zeek["orig_p"].to_list())
    assert alert["techniques"] == []  # a plain list says nothing about behaviour


def test_c2_indicator_carries_t1071(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    bundle = tmp_path / "c2.json"
    bundle.write_text(
        '{"type":"bundle","id":"bundle--1","objects":[{"type":"indicator","id":"indicator--c2",'
        '"name":"IP Address for known C2 channel","pattern_type":"stix","confidence":90,'
        '"pattern":"[ipv4-addr:value = \'198.51.100.7\']","valid_from":"2020-01-01T00:00:00Z"}]}'
    )
    import_files([bundle], tmp_path / "s", tlp="amber")
    conn = pl.from_arrow(schema_of("conn").empty_table())
    row = {c: None for c in conn.columns} | {
        "ts": datetime(2024, 1, 1, tzinfo=UTC), "uid": "Cx", "orig_h": "10.0.0.9", "orig_p": 5000,
        "resp_h": "198.51.100.7", "resp_p": 443, "proto": "tcp", "source": "t", "first_record": 1, "last_record": 2,
    }  # fmt: skip
    frames = {t: pl.from_arrow(schema_of(t).empty_table()).lazy() for t in TABLES}
    frames["conn"] = pl.concat([conn, pl.DataFrame([row], schema=conn.schema)]).lazy()  # type: ignore[list-item]
    run = run_detectors(
        frames, {"intel.match": IntelMatchParams(store=str(tmp_path / "s"))}, only=["intel.match"]
    )
    a = run.alerts.row(0, named=True)
    assert a["techniques"] == ["T1071"] and a["severity"] == "high" and a["src"] == "10.0.0.9"
    assert a["confidence"] == 0.9 and a["evidence"] == ["Cx"] and "TLP:AMBER" in a["summary"]
