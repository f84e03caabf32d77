"""Sigma over EVTX: mamori (EVTX sensor + vectorised Sigma evaluator) beside the common Python way.

The common way (Zircolite's design, and what most Python tooling does): the same EVTX files are
parsed with the same ``evtx`` package into Python dicts, each event is flattened into one dict of
field -> value, the events are inserted into an in-memory SQLite table with a column per field
(``TEXT COLLATE NOCASE``, as Zircolite builds it), every rule is converted with
``pysigma-backend-sqlite`` through the pySigma pipelines its README names
(``sysmon_pipeline() + windows_logsource_pipeline()``), and each query runs over the table (with a
Python ``REGEXP`` function, as the backend asks).

Both sides read the same files in the same run, repeated ``--repeat`` times so the input is large
enough to time; rule loading and conversion are timed apart from the events' path (both sides
would convert rules once and keep them). Matches are compared as sets of (rule id, event uid) on
the rules both sides compiled; every difference is counted per rule and the largest are printed.

    python benchmarks/bench_sigma.py --repeat 10 [--before REV] [--json OUT]

``--before REV`` also times the EVTX sensor as it was at an earlier commit (parsing only), beside
the working tree's, so a change to the sensor is measured in one run. The SQLite side needs
``pysigma-pipeline-sysmon`` and ``pysigma-pipeline-windows`` (they still declare pySigma < 2; install
them with ``pip install --no-deps``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import types
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MAMORI_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLE_DIRS = ("evtx-attack-samples", "sigma/regression_data")
RULES = SHARED / "sigma" / "rules" / "windows"


def evtx_files() -> list[Path]:
    """Every shared EVTX file, in a fixed order."""
    return sorted(p for d in SAMPLE_DIRS for p in (SHARED / d).rglob("*.evtx"))


# --- mamori ------------------------------------------------------------------------------------


def sensor(rev: str | None = None) -> Any:
    """The EVTX log sensor of the working tree, or the one at commit ``rev`` (not registered)."""
    from mamori.sensors import registry

    current = registry.registered_sensors()["evtx"]
    if rev is None:
        return current
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/mamori/sensors/logs/evtx.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType(f"evtx_at_{rev}")
    real = registry.log_sensor
    registry.log_sensor = lambda *a, **k: lambda fn: fn  # type: ignore[assignment]
    try:
        exec(compile(source, f"evtx.py@{rev}", "exec"), module.__dict__)
    finally:
        registry.log_sensor = real
    return registry.LogSensor(
        "evtx", current.tables, module.sniff, module.read, current.priority, current.doc
    )


def mamori_parse(paths: list[Path], repeat: int, log_sensor: Any) -> pa.Table:
    """Every file through the sensor ``repeat`` times: the ``winevt`` rows."""
    from mamori.sensors.logingest import ingest_log

    batches: list[pa.Table] = []

    def sink(table: str, batch: pa.Table) -> None:
        if table == "winevt":
            batches.append(batch)

    for _ in range(repeat):
        for path in paths:
            ingest_log(path, log_sensor, sink)
    return pa.concat_tables(batches)


def mamori_compile(rules: Path) -> Any:
    from mamori.detect.sigma import compile_rules

    return compile_rules([rules])


def mamori_evaluate(compiled: Any, winevt: pa.Table) -> pl.DataFrame:
    from mamori.detect.sigma import evaluate

    return evaluate(compiled, {"winevt": pl.from_arrow(winevt)})  # type: ignore[dict-item]


# --- the common Python approach: dicts, flattening, SQLite, pysigma-backend-sqlite -------------


def _text(value: Any) -> Any:
    if isinstance(value, dict):
        return _text(value.get("#text")) if "#text" in value else json.dumps(value)
    if isinstance(value, list):
        return "\n".join(str(_text(v)) for v in value if v is not None)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def flatten(event: dict[str, Any]) -> dict[str, Any]:
    """One event as Zircolite flattens it: System fields (attributes as ``Name_Attribute``, so
    ``Provider_Name``) and EventData/UserData fields by their names."""
    row: dict[str, Any] = {}
    for key, value in (event.get("System") or {}).items():
        if isinstance(value, dict):
            if "#text" in value:
                row[key] = value["#text"]
            for attr, v in (value.get("#attributes") or {}).items():
                row[f"{key}_{attr}"] = v
        elif value is not None:
            row[key] = value
    data = event.get("EventData")
    if isinstance(data, dict):
        for key, value in data.items():
            if key != "#attributes" and value is not None:
                row[key] = _text(value)
    elif data is not None:
        row["Data"] = _text(data)
    user = event.get("UserData")
    if isinstance(user, dict):
        for element in user.values():
            if isinstance(element, dict):
                for key, value in element.items():
                    if key != "#attributes" and value is not None:
                        row[key] = _text(value)
    return row


def sqlite_parse(paths: list[Path], repeat: int) -> list[dict[str, Any]]:
    """Every file parsed into flattened dicts (``uid`` as mamori names the same event)."""
    from evtx import PyEvtxParser

    from mamori.sensors.registry import content_seed

    seeds = {p: content_seed(p) for p in paths}
    rows: list[dict[str, Any]] = []
    for _ in range(repeat):
        for path in paths:
            seed = seeds[path]
            try:
                for number, record in enumerate(PyEvtxParser(str(path)).records_json(), 1):
                    row = flatten(json.loads(record["data"]).get("Event") or {})
                    row["uid"] = f"W{seed}.{number}"
                    rows.append(row)
            except (OSError, RuntimeError, ValueError):
                continue  # a damaged file: what came before stays, as on mamori's side
    return rows


def sqlite_load(rows: list[dict[str, Any]]) -> tuple[sqlite3.Connection, set[str]]:
    """An in-memory table with a column per field, every event inserted.

    SQLite's column names ignore case (Sysmon writes ``SourceProcessGuid`` and
    ``SourceProcessGUID``): fields are keyed by their lowercase name, the first spelling names
    the column."""
    columns: dict[str, str] = {}
    lowered = []
    for row in rows:
        low = {}
        for key, value in row.items():
            k = key.lower()
            columns.setdefault(k, key)
            # SQLite integers are 64-bit signed; Windows writes unsigned 64-bit values too.
            low[k] = str(value) if type(value) is int and not -(2**63) <= value < 2**63 else value
        lowered.append(low)
    keys = list(columns)
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, _regexp, deterministic=True)
    quoted = ", ".join(f'"{columns[k]}" TEXT COLLATE NOCASE' for k in keys)
    db.execute(f"CREATE TABLE logs ({quoted})")
    marks = ", ".join("?" * len(keys))
    db.executemany(
        f"INSERT INTO logs VALUES ({marks})", ([row.get(k) for k in keys] for row in lowered)
    )
    db.commit()
    return db, set(keys)


def _regexp(pattern: str, value: Any) -> bool:
    return value is not None and re.search(pattern, str(value)) is not None


def sqlite_convert(rules: Path) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """Rule id -> SQL queries; rule id -> why it could not be converted; rule id -> title."""
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection
    from sigma.pipelines.sysmon import sysmon_pipeline
    from sigma.pipelines.windows import windows_logsource_pipeline
    from sigma.rule import SigmaRule

    backend = sqliteBackend(sysmon_pipeline() + windows_logsource_pipeline())
    files = sorted(p for p in rules.rglob("*") if p.suffix in (".yml", ".yaml"))
    queries: dict[str, list[str]] = {}
    failed: dict[str, str] = {}
    titles: dict[str, str] = {}
    for f in files:
        try:
            collection = SigmaCollection.from_yaml(f.read_text(), collect_errors=True)
        except Exception as exc:
            failed[str(f)] = f"{type(exc).__name__}: {exc}"
            continue
        for rule in collection.rules:
            rid = str(rule.id or f)
            titles[rid] = str(rule.title)
            if not isinstance(rule, SigmaRule) or rule.errors:
                failed[rid] = "; ".join(map(str, getattr(rule, "errors", []))) or "not a rule"
                continue
            try:
                queries[rid] = backend.convert_rule(rule)
            except Exception as exc:
                failed[rid] = f"{type(exc).__name__}: {exc}"
    return queries, failed, titles


_SELECT = re.compile(r"^SELECT \* FROM logs\b")
_MISSING = re.compile(r"no such column: (.+)$")


def sqlite_run(
    db: sqlite3.Connection, columns: set[str], queries: dict[str, list[str]]
) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """Every query over the table: the (rule id, uid) matches, and the queries SQLite refused."""
    found: set[tuple[str, str]] = set()
    refused: dict[str, str] = {}
    for rid, sqls in queries.items():
        for sql in sqls:
            if not _SELECT.match(sql):
                refused[rid] = f"not a plain query: {sql[:60]}"
                continue
            sql = _SELECT.sub("SELECT uid FROM logs", sql, count=1)
            for _ in range(50):  # a column no event has: added as NULL, as the backend says
                try:
                    found.update((rid, uid) for (uid,) in db.execute(sql))
                    break
                except sqlite3.OperationalError as exc:
                    missing = _MISSING.search(str(exc))
                    if not missing or missing.group(1).lower() in columns:
                        refused[rid] = str(exc)
                        break
                    name = missing.group(1)
                    db.execute(f'ALTER TABLE logs ADD COLUMN "{name}" TEXT COLLATE NOCASE')
                    columns.add(name.lower())
    return found, refused


# --- the run ------------------------------------------------------------------------------------


CPU: dict[str, float] = {}  # CPU seconds (every thread of the process) per timed step


def _timed(fn: Any, *args: Any, step: str = "") -> tuple[Any, float]:
    """``fn(*args)`` and its wall time; its CPU time goes to ``CPU[step]``. On a shared machine
    (load above the core count) wall time measures the neighbours too; CPU time much less so."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    CPU[step or fn.__name__] = time.process_time() - c
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10, help="times every file is read")
    ap.add_argument("--rules", type=Path, default=RULES)
    ap.add_argument("--before", help="also time the EVTX sensor at this commit (parsing only)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating sensor rounds (--before)")
    ap.add_argument("--parse-only", action="store_true", help="time the sensors, no rules")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    if not args.parse_only:
        try:
            import sigma.backends.sqlite
            import sigma.pipelines.sysmon
            import sigma.pipelines.windows  # noqa: F401
        except ImportError as exc:
            sys.exit(
                f"bench_sigma: {exc.name} is missing: pip install pysigma-backend-sqlite, and"
                " pip install --no-deps pysigma-pipeline-sysmon pysigma-pipeline-windows"
            )
    paths = evtx_files()
    if not paths:
        sys.exit(f"bench_sigma: no EVTX files under {SHARED} ({', '.join(SAMPLE_DIRS)})")
    out: dict[str, Any] = {
        "files": len(paths),
        "repeat": args.repeat,
        "commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "load_before": os.getloadavg(),
    }
    now = sensor()
    mamori_parse(paths[:3], 1, now)  # imports and first-call costs out of the timings
    winevt, t_parse = _timed(mamori_parse, paths, args.repeat, now, step="mamori_parse")
    events = winevt.num_rows
    out["events"] = events
    out["mamori_parse_s"] = t_parse
    print(f"{len(paths)} files x {args.repeat}: {events:,} events")
    print(
        f"mamori EVTX sensor:        {t_parse:7.2f} s  {events / t_parse:10,.0f} events/s"
        f"  ({events / CPU['mamori_parse']:,.0f} events/CPU-s)"
    )
    if args.before:
        old = sensor(args.before)
        mamori_parse(paths[:3], 1, old)
        old_rows, t_old = _timed(mamori_parse, paths, args.repeat, old, step="before_parse")
        assert old_rows.num_rows == events, (old_rows.num_rows, events)
        same = old_rows.equals(winevt)
        del old_rows
        walls, cpus = [t_old / t_parse], [CPU["before_parse"] / CPU["mamori_parse"]]
        for _ in range(args.rounds - 1):  # alternate, so the load of the moment hits both alike
            _, t_n = _timed(mamori_parse, paths, args.repeat, now, step="now_round")
            _, t_o = _timed(mamori_parse, paths, args.repeat, old, step="before_round")
            walls.append(t_o / t_n)
            cpus.append(CPU["before_round"] / CPU["now_round"])
        wall, cpu = sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]
        out.update(
            before=args.before,
            before_parse_s=t_old,
            before_same_rows=same,
            sensor_ratio_wall=walls,
            sensor_ratio_cpu=cpus,
        )
        print(
            f"EVTX sensor at {args.before}:  {t_old:7.2f} s  {events / t_old:10,.0f} events/s"
            f"  ({events / CPU['before_parse']:,.0f} events/CPU-s); same rows: {same}"
        )
        print(
            f"  now faster by (median of {len(walls)} alternating rounds) {wall:.2f}x wall"
            f" ({', '.join(f'{w:.2f}' for w in walls)}), {cpu:.2f}x CPU"
            f" ({', '.join(f'{c:.2f}' for c in cpus)})"
        )
    if args.parse_only:
        _finish(out, args.json)
        return

    compiled, t_compile = _timed(mamori_compile, args.rules)
    matches, t_eval = _timed(mamori_evaluate, compiled, winevt)
    m_total = t_parse + t_eval
    out.update(
        mamori_compile_s=t_compile,
        mamori_eval_s=t_eval,
        mamori_events_per_s=events / m_total,
        mamori_rules=len(compiled.rules),
        mamori_unusable=len(compiled.unusable),
    )
    print(f"mamori Sigma evaluation:   {t_eval:7.2f} s  ({len(compiled.rules)} rules compiled")
    print(f"  in {t_compile:.1f} s, {len(compiled.unusable)} unusable)")
    print(f"mamori total:              {m_total:7.2f} s  {events / m_total:10,.0f} events/s")

    (queries, failed, titles), t_convert = _timed(sqlite_convert, args.rules)
    rows, t_sparse = _timed(sqlite_parse, paths, args.repeat)
    assert len(rows) == events, (len(rows), events)
    (db, columns), t_load = _timed(sqlite_load, rows)
    del rows
    (found, refused), t_query = _timed(sqlite_run, db, columns, queries)
    s_total = t_sparse + t_load + t_query
    out.update(
        sqlite_convert_s=t_convert,
        sqlite_parse_s=t_sparse,
        sqlite_load_s=t_load,
        sqlite_query_s=t_query,
        sqlite_events_per_s=events / s_total,
        sqlite_rules=len(queries) - len(refused),
        sqlite_unconverted=len(failed),
        sqlite_refused=len(refused),
    )
    print(f"SQLite: parse to dicts     {t_sparse:7.2f} s")
    print(f"        insert             {t_load:7.2f} s  ({len(columns)} columns)")
    print(
        f"        {len(queries):5d} queries    {t_query:7.2f} s  ({len(refused)} refused by SQLite)"
    )
    print(f"        (converted in {t_convert:.1f} s, {len(failed)} rules not converted)")
    print(f"SQLite total:              {s_total:7.2f} s  {events / s_total:10,.0f} events/s")
    ratio = s_total / m_total
    m_cpu = CPU["mamori_parse"] + CPU["mamori_evaluate"]
    s_cpu = CPU["sqlite_parse"] + CPU["sqlite_load"] + CPU["sqlite_run"]
    out.update(ratio=ratio, mamori_cpu_s=m_cpu, sqlite_cpu_s=s_cpu, ratio_cpu=s_cpu / m_cpu)
    print(f"mamori / SQLite:           {ratio:.2f}x wall time")
    print(
        f"CPU seconds: mamori {m_cpu:.2f} ({events / m_cpu:,.0f} events/CPU-s), SQLite"
        f" {s_cpu:.2f} ({events / s_cpu:,.0f} events/CPU-s): {s_cpu / m_cpu:.2f}x"
    )

    both = {r.id for r in compiled.rules} & (set(queries) - set(refused))
    mine = {(r, u) for r, u in matches.select("rule_id", "uid").unique().iter_rows() if r in both}
    theirs = {(r, u) for r, u in found if r in both}
    only_m = Counter(r for r, _ in mine - theirs)
    only_s = Counter(r for r, _ in theirs - mine)
    out.update(
        rules_both=len(both),
        matches_mamori=len(mine),
        matches_sqlite=len(theirs),
        matches_same=len(mine & theirs),
        only_mamori=len(mine - theirs),
        only_sqlite=len(theirs - mine),
        rules_differing=len(set(only_m) | set(only_s)),
        differing={
            rid: {
                "title": titles.get(rid, ""),
                "only_mamori": only_m[rid],
                "only_sqlite": only_s[rid],
            }
            for rid in sorted(set(only_m) | set(only_s))
        },
        rules_matching_mamori=len({r for r, _ in mine}),
        rules_matching_sqlite=len({r for r, _ in theirs}),
    )
    print(
        f"matches on the {len(both)} rules both compile: mamori {len(mine):,}, SQLite"
        f" {len(theirs):,}, both {len(mine & theirs):,}; rules differing:"
        f" {out['rules_differing']}"
    )
    for rid, d in sorted(
        out["differing"].items(), key=lambda kv: -(kv[1]["only_mamori"] + kv[1]["only_sqlite"])
    )[:25]:
        print(f"  {rid}  +{d['only_mamori']:<5} -{d['only_sqlite']:<5} {d['title']}")
    _finish(out, args.json)


def _finish(out: dict[str, Any], path: Path | None) -> None:
    out["load_after"] = os.getloadavg()
    out["cpu_s"] = CPU
    print(f"load average before {out['load_before']}, after {out['load_after']}")
    if path:
        path.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
