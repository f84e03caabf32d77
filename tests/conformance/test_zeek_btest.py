"""Conformance with Zeek's own btest baselines (``../shared/data/zeek-btest``).

Only the tests that run Zeek with its default scripts are used (``index.tsv``, ``script_mode``
``default-scripts``): they are the closest to a stock run. Baselines are canonified by btest (masked
timestamps, sometimes cut columns), so records are keyed by their identity fields plus their order
among equal keys, and only fields present in the baseline are compared.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl
import pytest

from mamori.flows.pipeline import tables_of
from mamori.lake.export import write_zeek
from support.zeek_logs import read_zeek_log

LOGS: dict[str, tuple[list[str], list[str]]] = {
    "conn": (["proto", "orig_h", "orig_p", "resp_h", "resp_p"],
             ["conn_state", "history", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes",
              "orig_bytes", "resp_bytes"]),
    "dns": (["orig_h", "orig_p", "resp_h", "resp_p", "trans_id"], ["query", "qtype", "rcode", "answers"]),
    "http": (["orig_h", "orig_p", "resp_h", "resp_p", "trans_depth"],
             ["method", "host", "uri", "status_code", "request_body_len", "response_body_len"]),
    "ssl": (["orig_h", "orig_p", "resp_h", "resp_p"], ["version", "cipher", "server_name", "established"]),
    "ssh": (["orig_h", "orig_p", "resp_h", "resp_p"], ["client", "server", "auth_success"]),
    "ftp": (["orig_h", "orig_p", "resp_h", "resp_p"], ["command", "arg", "reply_code"]),
}  # fmt: skip
# Goals per log. The baselines come from Zeek's development branch (2026-08), not 7.2.2: where the
# two Zeeks log differently (FTP's "<init>" row, DNS NOTIFY rows, QUIC and LDAP via Spicy, TLS
# decryption with a key file the test script loads) the stock-7.2.2 comparison in
# test_zeek_reference.py is the target, and these shares are reported, not asserted.
GOALS = {"conn": 0.95, "ssh": 0.95}


def _cases(data_dir: Path) -> list[tuple[str, Path, str, Path]]:
    root = data_dir / "zeek-btest"
    out = []
    with (root / "index.tsv").open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["script_mode"] != "default-scripts" or ";" in row["traces"]:
                continue
            for base in row["baseline_files"].split(";"):
                name = Path(base).name.removesuffix(".cut").removesuffix(".log")
                if name in LOGS and (root / base).is_file():
                    out.append((row["test"], root / row["traces"], name, root / base))
    return out


def _ours(capture: Path) -> dict[str, pl.DataFrame]:
    tables, _ = tables_of([capture])
    logs = {}
    for name, table in tables.items():
        buf = io.StringIO()
        write_zeek(name, table, buf)
        fields: list[str] = []
        rows = []
        for line in buf.getvalue().splitlines():
            if line.startswith("#fields"):
                fields = [f.removeprefix("id.") for f in line.split("\t")[1:]]
            elif not line.startswith("#"):
                rows.append(line.split("\t"))
        logs[name] = pl.DataFrame(rows, schema=fields, orient="row")
    return logs


def _ordinal(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    order = ["ts", *keys] if "ts" in df.columns else keys
    return df.sort(order, maintain_order=True).with_columns(_n=pl.int_range(pl.len()).over(keys))


def test_btest_baselines(data_dir: Path) -> None:
    cases = _cases(data_dir)
    assert cases, "no default-scripts btest baselines found"
    per_log: dict[str, list[int]] = {}
    diffs: list[str] = []
    cache: dict[Path, dict[str, pl.DataFrame]] = {}
    for test, trace, log, baseline in cases:
        z = read_zeek_log(baseline)
        keys, fields = LOGS[log]
        if z.is_empty() or not set(keys) <= set(z.columns):
            continue
        fields = [f for f in fields if f in z.columns]
        if trace not in cache:
            cache[trace] = _ours(trace)
        m = cache[trace].get(log, pl.DataFrame())
        counts = per_log.setdefault(log, [0, 0])
        counts[1] += z.height
        if m.is_empty():
            diffs.append(f"{test} {log}: {z.height} records, none of ours")
            continue
        j = (
            _ordinal(z, keys)
            .select([*keys, "_n", *fields])
            .join(
                _ordinal(m, keys).select([*keys, "_n", *fields]),
                on=[*keys, "_n"],
                how="left",
                suffix="_ours",
            )
        )
        same = pl.all_horizontal([pl.col(f) == pl.col(f"{f}_ours") for f in fields]).fill_null(
            False
        )
        counts[0] += j.filter(same).height
        for row in j.filter(~same).head(2).iter_rows(named=True):
            delta = {f: (row[f], row[f"{f}_ours"]) for f in fields if row[f] != row[f"{f}_ours"]}
            diffs.append(f"{test} {log} {'|'.join(str(row[k]) for k in keys)}: zeek→ours {delta}")
    for log, (ok, total) in sorted(per_log.items()):
        print(f"\nbtest {log}: {ok}/{total} = {ok / total:.3f}")
    for d in diffs:
        print("  ", d)
    assert per_log, "no baseline records compared"
    for log, goal in GOALS.items():
        ok, total = per_log[log]
        assert ok / total >= goal, f"btest {log}: {ok}/{total} below {goal}:\n" + "\n".join(
            diffs[:30]
        )


@pytest.mark.parametrize("log", ["conn"])
def test_btest_covers_connection_baselines(log: str, data_dir: Path) -> None:
    """The pairing must find the connection baselines (a silent empty pairing would prove nothing)."""
    assert sum(1 for c in _cases(data_dir) if c[2] == log) >= 8
