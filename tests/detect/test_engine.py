"""The engine isolates a failing detector and suppresses repeats like Zeek's notice framework."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from mamori.detect.base import empty_alerts
from mamori.detect.engine import run_detectors, suppress


def _alert(key: str, minute: int, count: int = 1) -> dict[str, object]:
    t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    return {
        "ts": t, "detector": "d", "techniques": ["T1046"], "severity": "medium", "confidence": 0.5,
        "summary": "s", "src": "10.0.0.1", "dst": None, "first_seen": t, "last_seen": t + timedelta(minutes=1),
        "count": count, "evidence_table": "conn", "evidence": [f"C{minute}"], "key": key,
    }  # fmt: skip


def test_repeats_within_the_interval_merge_and_later_ones_do_not() -> None:
    df = pl.DataFrame([_alert("k", 0, 2), _alert("k", 30, 3), _alert("k", 90, 1), _alert("j", 0, 5)],
                      schema=empty_alerts().schema)  # fmt: skip
    out = suppress(df, timedelta(hours=1))
    k = out.filter(pl.col("key") == "k").sort("first_seen")
    assert k["count"].to_list() == [5, 1]
    assert k["evidence"].to_list()[0] == ["C0", "C30"]
    assert k["summary"].to_list() == ["s (+1 later detection(s) within 1 h)", "s"]
    assert out.filter(pl.col("key") == "j")["count"].to_list() == [5]


def test_a_failing_detector_is_reported_and_the_others_still_run(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mamori.detect import base

    dets = base.registered()
    broken = base.Detector("broken.one", ("conn",), ("orig_h",), ("T0000",), base.Params,
                           lambda conn, p: conn.select(pl.col("no_such_column")), "always fails")  # fmt: skip
    monkeypatch.setattr(base, "registered", lambda: {**dets, "broken.one": broken})
    monkeypatch.setattr("mamori.detect.engine.registered", lambda: {**dets, "broken.one": broken})
    from mamori.schema import TABLES, schema_of

    frames = {t: pl.from_arrow(schema_of(t).empty_table()).lazy() for t in TABLES}
    run = run_detectors(frames)
    assert "broken.one" in run.failed
    assert run.alerts.height == 0
