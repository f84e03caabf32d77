"""`mamori patrol`: the main job writes report.json (the documented contract) and report.html."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mamori.cli import app

runner = CliRunner()
ALERT_KEYS = {
    "detector",
    "techniques",
    "severity",
    "confidence",
    "summary",
    "src",
    "dst",
    "first_seen",
    "last_seen",
    "evidence",
}
INCIDENT_KEYS = {
    "id",
    "title",
    "severity",
    "confidence",
    "techniques",
    "entities",
    "first_seen",
    "last_seen",
    "alerts",
}


def test_patrol_on_the_ssh_guessing_trace(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["patrol", str(data_dir / "zeek-btest/Traces/ssh/sshguess.pcap"), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["incidents"] >= 1
    inc = next(i for i in report["incidents"] if "T1110.001" in i["techniques"])
    assert inc.keys() >= INCIDENT_KEYS
    assert inc["severity"] in ("low", "medium", "high", "critical") and 0 < inc["confidence"] <= 1
    assert set(inc["entities"]) == {"attackers", "victims", "domains"}
    assert inc["entities"]["attackers"] == ["192.168.56.1"]
    for a in inc["alerts"]:
        assert a.keys() >= ALERT_KEYS
        assert a["evidence"]["table"] == "ssh" and a["evidence"]["uids"]
    html = (out / "report.html").read_text()
    assert inc["title"] in html and "<svg" in html
    assert (out / "lake" / "alerts").is_dir()  # alerts are a lake table too
    # The report says where the records behind its evidence uids are.
    assert Path(report["lake"]) == (out / "lake").resolve()
    uids = set(inc["alerts"][0]["evidence"]["uids"])
    ssh = pl.read_parquet(Path(report["lake"]) / "ssh" / "*" / "*.parquet")
    assert uids <= set(ssh["uid"])
    assert "T1110.001" in res.output and "1 incidents" in res.output  # the terminal summary


def test_terminal_summary_lists_the_most_severe_and_counts_the_rest(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy day has hundreds of incidents: the terminal shows the worst, the report all."""
    import mamori.cli

    monkeypatch.setattr(mamori.cli, "TERMINAL_INCIDENTS", 1)
    captures = [
        data_dir / "zeek-btest/Traces/ssh/sshguess.pcap",  # a medium incident
        data_dir / "pcaps-ddos-stopddos/amp.UDP.snmp.src161.pcapng",  # a critical one
    ]
    out = tmp_path / "out"
    res = runner.invoke(app, ["patrol", *map(str, captures), "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert [i["severity"] for i in report["incidents"]] == ["critical", "medium"]
    assert "T1498.002" in res.output and "T1110.001" not in res.output
    assert "1 less severe not shown (1 medium): see the report" in " ".join(res.output.split())


def test_patrol_is_quiet_on_normal_traffic(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["patrol", str(data_dir / "zeek-btest/Traces/http/get.pcap"), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["incidents"] == [] and report["summary"]["connections"] > 0
    assert "No incident" in (out / "report.html").read_text()


def test_bad_parameter_file_is_one_clear_error(tmp_path: Path, data_dir: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("bruteforce.ssh:\n  nope: 1\n")
    res = runner.invoke(
        app, ["patrol", str(data_dir / "zeek-btest/Traces/http/get.pcap"), "--params", str(bad)]
    )
    assert res.exit_code == 2 and "unknown parameter 'nope'" in res.output


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from("abcdefgh"), max_size=40), st.integers(1, 5))
def test_busiest_hosts_are_the_plain_count(hosts: list[str], n: int) -> None:
    """The report's top talkers (counted by hash first, then by name) are exactly a plain
    group-by-and-sort's, ties broken by name."""
    from mamori.patrol import _top

    df = pl.DataFrame({"h": hosts}, schema={"h": pl.String})
    plain = (
        df.group_by("h")
        .agg(connections=pl.len())
        .sort("connections", "h", descending=[True, False])
        .head(n)
    )
    assert _top(df, "h", n) == [{"host": h, "connections": c} for h, c in plain.iter_rows()]
