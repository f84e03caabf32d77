"""The ``sigma`` detector: rules from parameters, matches as alerts per rule and host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from mamori.detect.base import DetectorConfigError, load_params
from mamori.detect.detectors.sigma_rules import SigmaParams
from mamori.detect.engine import run_detectors
from mamori.schema import schema_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sigma_helpers import rule_dict, winevt


def write_rule(folder: Path, name: str, level: str, tags: list[str], **kw: object) -> Path:
    rule = rule_dict(
        {"sel": {"TargetUserName": "admin"}, "condition": "sel"}, level=level, tags=tags
    )
    rule.update(kw)
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(rule), encoding="utf-8")
    return path


def frames(events: pl.DataFrame) -> dict[str, pl.LazyFrame]:
    empty = {t: pl.from_arrow(schema_of(t).empty_table()).lazy() for t in ("syslog", "jsonlog")}
    return {"winevt": events.lazy(), **empty}  # type: ignore[dict-item]


def logons() -> pl.DataFrame:
    a = winevt(
        [
            {"TargetUserName": "admin", "IpAddress": "-"},
            {"TargetUserName": "ADMIN", "IpAddress": "203.0.113.9"},
            {"TargetUserName": "bob", "IpAddress": "203.0.113.9"},
        ],
        event_id=4625,
        host="dc1",
    )
    b = winevt([{"TargetUserName": "admin"}], event_id=4625, host="dc2")
    return pl.concat([a, b.with_columns(uid=pl.lit("f0"))])


def test_declares_any_technique_its_rules_may_tag() -> None:
    from mamori.detect.base import registered

    attack = registered()["sigma"].attack
    assert {"T1059.001", "T1110.001", "T1543.003"} <= set(attack)


def test_matches_become_one_alert_per_rule_and_host(tmp_path: Path) -> None:
    path = write_rule(tmp_path, "r", "high", ["attack.credential-access", "attack.t1110.001"])
    p = SigmaParams(rules=(str(path),))
    found = run_detectors(frames(logons()), {"sigma": p}, only=["sigma"])
    assert not found.failed
    alerts = found.alerts.sort("key")
    assert alerts["key"].to_list() == [
        "sigma|6f1d7c2e-0000-4000-8000-000000000001|dc1",
        "sigma|6f1d7c2e-0000-4000-8000-000000000001|dc2",
    ]
    dc1 = alerts.row(0, named=True)
    assert dc1["techniques"] == ["T1110.001"]
    assert dc1["severity"] == "high"
    assert dc1["evidence_table"] == "winevt"
    assert dc1["evidence"] == ["e0", "e1"]
    assert dc1["count"] == 2
    assert dc1["src"] == "203.0.113.9"  # "-" is Windows' "no address"
    assert dc1["dst"] == "dc1"  # no destination address named: the machine that logged it
    assert "test rule" in dc1["summary"] and "dc1" in dc1["summary"]


def test_levels_below_the_floor_do_not_run(tmp_path: Path) -> None:
    info = write_rule(tmp_path, "i", "informational", [])
    low = write_rule(tmp_path, "l", "low", [], id="6f1d7c2e-0000-4000-8000-000000000002")
    rules = (str(info), str(low))
    default = run_detectors(frames(logons()), {"sigma": SigmaParams(rules=rules)}, only=["sigma"])
    assert {k.split("|")[1][-1] for k in default.alerts["key"]} == {"2"}
    assert set(default.alerts["severity"]) == {"low"}
    every = SigmaParams(rules=rules, min_level="informational")
    found = run_detectors(frames(logons()), {"sigma": every}, only=["sigma"])
    assert {k.split("|")[1][-1] for k in found.alerts["key"]} == {"1", "2"}
    assert set(found.alerts["severity"]) == {"low"}  # informational is reported as low


def test_rules_come_from_the_environment_or_a_params_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAMORI_SIGMA_RULES", os.pathsep.join(["/a/rules", "/b/rules"]))
    assert SigmaParams().rules == ("/a/rules", "/b/rules")
    monkeypatch.delenv("MAMORI_SIGMA_RULES")
    assert SigmaParams().rules == ()
    assert run_detectors(frames(logons()), only=["sigma"]).alerts.height == 0
    cfg = tmp_path / "params.yaml"
    cfg.write_text(yaml.safe_dump({"sigma": {"rules": [str(tmp_path)], "min_level": "high"}}))
    assert load_params(cfg)["sigma"] == SigmaParams(rules=(str(tmp_path),), min_level="high")
    cfg.write_text(yaml.safe_dump({"sigma": {"min_level": "severe"}}))
    with pytest.raises(DetectorConfigError, match="min_level"):
        load_params(cfg)


def test_a_rule_edited_in_place_is_compiled_again(tmp_path: Path) -> None:
    path = write_rule(tmp_path, "r", "high", [])
    p = SigmaParams(rules=(str(tmp_path),))
    first = run_detectors(frames(logons()), {"sigma": p}, only=["sigma"])
    assert first.alerts.height == 2
    rule = yaml.safe_load(path.read_text())
    rule["detection"]["sel"]["TargetUserName"] = "bob"
    path.write_text(yaml.safe_dump(rule))
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))
    again = run_detectors(frames(logons()), {"sigma": p}, only=["sigma"])
    assert again.alerts["evidence"].to_list() == [["e2"]]


def test_a_run_without_rules_never_loads_pysigma() -> None:
    """Every patrol registers the detectors and checks their parameters before ingest starts;
    pySigma (~80 ms to import) is loaded only by a run that has rules to compile. In a fresh
    interpreter, since this one has loaded it already."""
    code = (
        "import sys\n"
        "from mamori.detect.base import load_params, registered\n"
        "from mamori.detect.engine import run_detectors\n"
        "load_params(None)\n"
        "assert 'sigma' in registered()\n"
        "import polars as pl\n"
        "from mamori.schema import schema_of\n"
        "tables = ('winevt', 'syslog', 'jsonlog')\n"
        "frames = {t: pl.from_arrow(schema_of(t).empty_table()).lazy() for t in tables}\n"
        "run = run_detectors(frames, only=['sigma'])\n"
        "assert not run.failed, run.failed\n"
        "print(sorted(m for m in sys.modules if m == 'sigma' or m.startswith('sigma.')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MAMORI_SIGMA_RULES"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
