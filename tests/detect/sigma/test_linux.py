"""Linux rules over syslog: Sysmon for Linux's XML events and auditd's key=value records."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
from sigma.rule import SigmaRule

from mamori.detect.sigma import CompiledRules, evaluate, load_pipeline
from mamori.detect.sigma.compiler import compile_rule
from mamori.sensors.logingest import ingest_log
from mamori.sensors.registry import registered_sensors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sigma_helpers import rule_dict

SYSMON = (
    'Nov 23 10:00:0{n} web1 sysmon: <Event><System><Provider Name="Linux-Sysmon" '
    'Guid="{{ff032593-a8d3-4f13-b0d6-01fc615a0f97}}"/><EventID>{eid}</EventID><Version>5</Version>'
    "<Channel>Linux-Sysmon/Operational</Channel><Computer>web1</Computer></System><EventData>"
    '<Data Name="RuleName">-</Data><Data Name="ProcessId">42</Data>'
    '<Data Name="Image">{image}</Data><Data Name="CommandLine">{cmd}</Data>'
    '<Data Name="User">root</Data></EventData></Event>'
)
AUDIT = (
    "Nov 23 10:00:0{n} web1 audisp-syslog: type={type} msg=audit(1700000000.1:{n}): "
    'argc=3 a0="{a0}" a1="-s" key={key}'
)


def syslog(tmp_path: Path, lines: list[str]) -> pl.DataFrame:
    path = tmp_path / "messages"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    batches: list[pa.Table] = []
    stats = ingest_log(
        path,
        registered_sensors()["syslog"],
        lambda table, batch: batches.append(batch) if table == "syslog" else None,
        year=2026,
    )
    assert stats.error is None and stats.skipped == 0, stats
    return pl.from_arrow(pa.concat_tables(batches))  # type: ignore[return-value]


def run(rule: dict[str, object], frame: pl.DataFrame) -> list[int]:
    units = compile_rule(SigmaRule.from_dict(rule), "r.yml", load_pipeline())
    compiled = CompiledRules(tuple(units), (units[0].rule,), ())
    uids = evaluate(compiled, {"syslog": frame})["uid"].to_list()
    return sorted(frame.filter(pl.col("uid").is_in(uids))["record"].to_list())


def test_sysmon_for_linux_process_creation(tmp_path: Path) -> None:
    frame = syslog(
        tmp_path,
        [
            SYSMON.format(n=1, eid=1, image="/usr/bin/curl", cmd="curl -s http://x &amp; id"),
            SYSMON.format(n=2, eid=3, image="/usr/bin/curl", cmd="curl -s http://x &amp; id"),
            SYSMON.format(n=3, eid=1, image="/usr/bin/wget", cmd="wget http://x"),
            "Nov 23 10:00:04 web1 sshd[7]: Accepted password for root from 10.0.0.9 port 22 ssh2",
        ],
    )
    rule = rule_dict(
        {"sel": {"Image|endswith": "/curl", "CommandLine|contains": "& id"}, "condition": "sel"},
        logsource={"product": "linux", "category": "process_creation"},
    )
    assert run(rule, frame) == [1]  # event 3 is a network connection; entities are decoded


def test_auditd_records(tmp_path: Path) -> None:
    frame = syslog(
        tmp_path,
        [
            AUDIT.format(n=1, type="EXECVE", a0="curl", key="exec"),
            AUDIT.format(n=2, type="EXECVE", a0="wget", key="exec"),
            AUDIT.format(n=3, type="SYSCALL", a0="curl", key='"susp"'),
        ],
    )
    rule = rule_dict(
        {"sel": {"type": "EXECVE", "a0": "curl"}, "condition": "sel"},
        logsource={"product": "linux", "service": "auditd"},
    )
    assert run(rule, frame) == [1]
    keyed = rule_dict(
        {"sel": {"key": "susp"}, "condition": "sel"},
        logsource={"product": "linux", "service": "auditd"},
    )
    assert run(keyed, frame) == [3]


def test_keyword_rules_over_syslog_messages(tmp_path: Path) -> None:
    frame = syslog(
        tmp_path,
        [
            "Nov 23 10:00:01 web1 kernel: [1.0] Oops: general protection fault",
            "Nov 23 10:00:02 web1 sshd[7]: Accepted password for root from 10.0.0.9 port 22 ssh2",
        ],
    )
    rule = rule_dict(
        {"keywords": ["general protection fault"], "condition": "keywords"},
        logsource={"product": "linux"},
    )
    assert run(rule, frame) == [1]
    sshd = rule_dict(
        {"keywords": ["accepted password"], "condition": "keywords"},
        logsource={"product": "linux", "service": "sshd"},
    )
    assert run(sshd, frame) == [2]


def test_fortigate_key_value_events(tmp_path: Path) -> None:
    line = (
        'Nov 23 10:00:0{n} fgt1 date=2026-11-23 time=10:00:0{n} devname="FGT-1" type="event" '
        'subtype="system" user="admin" action="{action}" cfgpath="firewall.policy" msg="x y"'
    )
    frame = syslog(tmp_path, [line.format(n=1, action="Add"), line.format(n=2, action="Edit")])
    rule = rule_dict(
        {"sel": {"action": "Add", "cfgpath": "firewall.policy"}, "condition": "sel"},
        logsource={"product": "fortigate", "service": "event"},
    )
    assert run(rule, frame) == [1]
