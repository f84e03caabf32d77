"""The main job: captures and logs in, a report out (ingest → detect → correlate → report).

One function the CLI and, later, the web console call; it only sequences the stages, each of which
reads the tables of the one before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from mamori import __version__
from mamori.config import Settings
from mamori.correlate.incidents import Incident, correlate, host_aliases
from mamori.detect.base import Params, registered
from mamori.detect.engine import held_frames, run_detectors
from mamori.flows.pipeline import CaptureStats
from mamori.flows.workers import LakeIngest
from mamori.lake.writer import LakeWriter
from mamori.report.patrol import write_html, write_json
from mamori.sensors.inputs import CAPTURE, Input, kind_of
from mamori.sensors.logingest import LogStats, ingest_log
from mamori.sensors.registry import registered_sensors


@dataclass
class PatrolResult:
    captures: list[CaptureStats]
    alerts: pl.DataFrame
    incidents: list[Incident]
    failed_detectors: dict[str, str]
    report: dict[str, object]
    json_path: Path
    html_path: Path
    logs: list[LogStats]


def patrol(
    inputs: Iterable[Path | Input],
    lake: Path,
    out: Path,
    settings: Settings,
    params: dict[str, Params] | None = None,
    progress: Callable[[Path, int], None] | None = None,
    ingester: LakeIngest | None = None,
) -> PatrolResult:
    """``ingester``: a ``LakeIngest`` of ``lake`` made by the caller (the command makes it before
    anything else runs, so its workers can be forked: ``flows.workers``); patrol closes it."""
    started = datetime.now(UTC)
    chosen = [i if isinstance(i, Input) else Input(i, kind_of(i) or CAPTURE) for i in inputs]
    stats: list[CaptureStats] = []
    logs: list[LogStats] = []
    with ingester or LakeIngest(settings, lake) as ingester:
        for item in chosen:
            if item.kind == CAPTURE:
                cb = (lambda n, p=item.path: progress(p, n)) if progress else None
                stats.append(ingester.capture(item.path, cb))
    sensors = registered_sensors()
    with LakeWriter(lake, compression=settings.lake_compression) as writer:
        for item in chosen:
            if item.kind != CAPTURE:
                logs.append(
                    ingest_log(
                        item.path, sensors[item.kind], writer, timezone=settings.log_timezone
                    )
                )
                if progress:
                    progress(item.path, logs[-1].bytes)
    tables = sorted({t for d in registered().values() for t in d.reads} | {"conn"})
    # The conn table held in memory: every detector over it reads it from there, not the lake.
    frames = held_frames(lake, tables)
    # The report's traffic charts read only the conn table, not the alerts: counted on the
    # engine's light lane while heavy detectors run, not after them.
    run = run_detectors(frames, params, beside={"traffic": lambda: _traffic(frames["conn"])})
    traffic = run.beside["traffic"]
    with LakeWriter(lake, compression=settings.lake_compression) as writer:
        writer.write("alerts", run.alerts.to_arrow())
    incidents = correlate(
        run.alerts,
        indicators=_indicators(params),
        aliases=host_aliases(settings.host_addresses),
    )
    report = build_report(
        stats,
        frames["conn"],
        run.alerts,
        incidents,
        run.failed,
        started,
        lake=lake,
        logs=logs,
        traffic=traffic,  # type: ignore[arg-type]
    )
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    write_json(report, json_path)
    write_html(report, html_path)
    return PatrolResult(
        stats, run.alerts, incidents, run.failed, report, json_path, html_path, logs
    )


def _indicators(params: dict[str, Params] | None) -> pl.DataFrame | None:
    """The intel store intel.match read from, so incidents can carry attribution hypotheses."""
    from mamori.intel.store import read

    chosen = (params or {}).get("intel.match")
    store = getattr(chosen, "store", None) or getattr(
        registered()["intel.match"].params(), "store", None
    )
    return read(Path(store)) if store else None


def build_report(
    stats: list[CaptureStats],
    conn: pl.LazyFrame,
    alerts: pl.DataFrame,
    incidents: list[Incident],
    failed: dict[str, str],
    started: datetime,
    lake: Path | None = None,
    logs: list[LogStats] | None = None,
    traffic: dict[str, object] | None = None,
) -> dict[str, object]:
    """The report's content (the JSON is the contract; the HTML renders the same dict).
    ``traffic``: :func:`_traffic` of ``conn`` if the caller counted it already."""
    traffic = _traffic(conn) if traffic is None else traffic
    by_sev = {
        s: sum(1 for i in incidents if i.severity == s)
        for s in ("critical", "high", "medium", "low")
    }
    return {
        "schema": "mamori.patrol.report/1",
        "mamori_version": __version__,
        "generated": datetime.now(UTC).isoformat(),
        "started": started.isoformat(),
        # Where the records behind the evidence uids are (cases and evidence packages read them).
        "lake": str(Path(lake).resolve()) if lake is not None else None,
        "inputs": [
            {
                "path": s.path,
                "kind": CAPTURE,
                "packets": s.packets,
                "bytes": s.bytes,
                "records": s.rows,
                "problem": str(s.problem) if s.problem else None,
                "notices": [str(n) for n in s.notices],
                "error": s.error,
            }
            for s in stats
        ]
        + [
            {
                "path": s.path,
                "kind": s.sensor,
                "packets": 0,
                "bytes": s.bytes,
                "records": s.rows,
                "problem": s.problem,
                "error": s.error,
                "skipped_records": s.skipped,
            }
            for s in logs or []
        ],
        "summary": {
            "packets": sum(s.packets for s in stats),
            "log_records": sum(s.records for s in logs or []),
            "connections": traffic["connections"],
            "alerts": alerts.height,
            "incidents": len(incidents),
            "incidents_by_severity": by_sev,
            "failed_detectors": failed,
        },
        "traffic": traffic,
        "alert_timeline": _alert_timeline(alerts),
        "incidents": [i.to_json() for i in incidents],
    }


def _traffic(conn: pl.LazyFrame, buckets: int = 48) -> dict[str, object]:
    """Connections over time and the busiest talkers, for the report's charts.

    One column of addresses at a time: a day of connections is millions of rows, and patrol's
    memory peak is set by what any one stage holds at once."""
    df = conn.select("ts", "orig_ip_bytes", "resp_ip_bytes").collect()
    if df.height == 0:
        return {"connections": 0, "series": [], "top_sources": [], "top_destinations": []}
    lo, hi = df["ts"].min(), df["ts"].max()
    span = max((hi - lo).total_seconds(), 1.0)  # type: ignore[operator, union-attr]
    step = span / buckets
    series = (
        df.with_columns(
            b=((pl.col("ts") - lo).dt.total_microseconds() / 1e6 // step).clip(0, buckets - 1)
        )
        .group_by("b")
        .agg(connections=pl.len(), bytes=(pl.col("orig_ip_bytes") + pl.col("resp_ip_bytes")).sum())
        .sort("b")
    )
    start = lo.timestamp()  # type: ignore[union-attr]
    return {
        "connections": df.height,
        "bucket_seconds": step,
        "series": [
            {
                "t": datetime.fromtimestamp(start + b * step, UTC).isoformat(),
                "connections": c,
                "bytes": int(n or 0),
            }
            for b, c, n in series.iter_rows()
        ],
        "top_sources": _top(conn, "orig_h"),
        "top_destinations": _top(conn, "resp_h"),
    }


def _top(frame: pl.LazyFrame | pl.DataFrame, col: str, n: int = 10) -> list[dict[str, object]]:
    """The ``n`` hosts with most connections (ties by name).

    A flood's spoofed sources are millions of hosts with a connection each, so hosts are first
    counted by a hash of their text (cheap, and no text is held), and only the rows of hashes
    counting at least the ``n``-th largest are read again and counted by name. A hash shared by
    several hosts sums their counts, so it can keep too many rows, and it could only drop a host
    wrongly if fewer than ``n`` names reach that floor: then every name is counted (checked
    below, so the answer is always exact)."""
    rows = frame.lazy().select(col)
    hashed = pl.col(col).hash(seed=0)
    per_hash = rows.group_by(hashed.alias("__h")).agg(pl.len().alias("__n")).collect()
    everything = rows.group_by(col).agg(connections=pl.len())
    if per_hash.height > n:
        floor = per_hash["__n"].top_k(n).min()
        kept = per_hash.filter(pl.col("__n") >= floor)["__h"].implode()
        counted = rows.filter(hashed.is_in(kept)).group_by(col).agg(connections=pl.len()).collect()
        if counted.filter(pl.col("connections") >= floor).height < n:
            counted = everything.collect()
    else:
        counted = everything.collect()
    # top_k, then a sort of those few: not a sort of every host.
    top = counted.top_k(n, by=["connections", col], reverse=[False, True]).sort(
        "connections", col, descending=[True, False]
    )
    return [{"host": h, "connections": c} for h, c in top.iter_rows()]


def _alert_timeline(alerts: pl.DataFrame) -> list[dict[str, object]]:
    return [
        {
            "t": a["first_seen"].isoformat(),
            "detector": a["detector"],
            "severity": a["severity"],
            "src": a["src"],
            "dst": a["dst"],
        }
        for a in alerts.sort("first_seen")
        .select("first_seen", "detector", "severity", "src", "dst")
        .to_dicts()
    ]
