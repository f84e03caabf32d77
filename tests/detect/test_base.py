"""The detector contract: registry, typed parameters with YAML overrides, alert rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from mamori.detect.base import (
    DetectorConfigError,
    Params,
    alerts,
    detector,
    load_params,
    registered,
)
from mamori.schema.alerts import SCHEMA


def test_builtins_are_registered_with_their_contract() -> None:
    dets = registered()
    ssh = dets["bruteforce.ssh"]
    assert ssh.reads == ("ssh",) and ssh.key == ("orig_h",) and "T1110.001" in ssh.attack
    for d in dets.values():
        assert d.doc, f"{d.id} has no docstring"
        assert d.attack, f"{d.id} declares no ATT&CK technique"


def test_a_second_detector_with_the_same_id_is_rejected() -> None:
    @dataclass(frozen=True)
    class P(Params):
        pass

    with pytest.raises(ValueError, match="registered twice"):
        detector("bruteforce.ssh", reads="conn", key=("orig_h",), attack=("T0000",), params=P)(
            lambda f, p: f
        )


def test_yaml_overrides_and_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("bruteforce.ssh:\n  password_guesses_limit: 3\n")
    assert load_params(good)["bruteforce.ssh"].password_guesses_limit == 3  # type: ignore[attr-defined]
    assert load_params(None)["bruteforce.ssh"].password_guesses_limit == 10  # type: ignore[attr-defined]
    lists = tmp_path / "l.yaml"
    lists.write_text("c2.beaconing:\n  ignore_ports: [123, 53]\n")
    assert load_params(lists)["c2.beaconing"].ignore_ports == (123, 53)  # type: ignore[attr-defined]
    cases = {
        "nope.detector:\n  x: 1\n": "unknown detector 'nope.detector'",
        "bruteforce.ssh:\n  bogus: 1\n": "unknown parameter 'bogus'",
        "bruteforce.ssh:\n  password_guesses_limit: many\n": "expected int",
        "- just\n- a list\n": "expected a mapping",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(DetectorConfigError, match=message) as err:
            load_params(bad)
        assert str(bad) in str(err.value)


def test_alert_rows_follow_the_schema() -> None:
    ts = pl.datetime(2026, 1, 1, time_zone="UTC")
    frame = pl.LazyFrame({"h": ["10.0.0.1"], "n": [3], "u": [["C1", "C2"]]})
    out = alerts(
        frame.with_columns(t=ts),
        detector_id="x.y",
        techniques=("T1046",),
        severity="high",
        confidence=1.7,
        summary=pl.lit("s"),
        src=pl.col("h"),
        dst=None,
        first_seen=pl.col("t"),
        last_seen=pl.col("t"),
        count=pl.col("n"),
        evidence_table="conn",
        evidence=pl.col("u"),
        key=pl.col("h"),
    ).collect()
    assert out.columns == SCHEMA.names
    row = out.row(0, named=True)
    assert row["confidence"] == 1.0  # clipped to [0, 1]
    assert row["key"] == "x.y|10.0.0.1" and row["dst"] is None
    with pytest.raises(ValueError, match="severity"):
        alerts(frame, detector_id="x", techniques=(), severity="severe", confidence=0.5, summary=pl.lit(""),
               src=None, dst=None, first_seen=ts, last_seen=ts, count=pl.lit(1), evidence_table="conn",
               evidence=pl.col("u"), key=pl.lit(""))  # fmt: skip
