"""The ``mamori`` command: a thin door over the stages (no logic lives here).

Every long job shows a progress bar and ends with a summary table; bad input is reported as one
line naming the file, the record and the reason, never as a traceback.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import os
import sys
import threading
import time
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer
import typer.main
from typer.core import TyperGroup

from mamori import __version__
from mamori.config import load_settings

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from mamori.sensors.inputs import Input

# Stage-owned command groups: (module, Typer app attribute, help). Each stage ships its own Typer
# app; the door mounts it only when its name is typed (or help lists every command), so
# `mamori ingest` does not pay for importing the web, database and sharing stacks.
STAGES: dict[str, tuple[str, str, str]] = {
    "intel": ("mamori.intel.cli", "app", "Threat intelligence: import indicators, list them."),
    "respond": ("mamori.respond.cli", "app", "Plan, judge, approve and expire responses."),
    "case": ("mamori.cases.cli", "app", "Cases opened from a patrol's incidents."),
    "evidence": ("mamori.cases.cli", "evidence_app", "Build and verify evidence packages."),
    "keys": ("mamori.cases.cli", "keys_app", "The operator's signing keys."),
    "report": (
        "mamori.cases.cli",
        "report_app",
        "Incident, referral, attribution, regulator reports.",
    ),
    "share": ("mamori.share.cli", "app", "STIX 2.1 export, TAXII 2.1 partners, TLP."),
    "sigma": ("mamori.detect.sigma.cli", "app", "Sigma rules: check what compiles, run them."),
    "user": ("mamori.web.users_cli", "app", "Console and API users, roles and tokens."),
}


class _Door(TyperGroup):
    """The root group: built-in commands, plus each stage's group loaded on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *STAGES]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in STAGES:
            return super().get_command(ctx, name)
        module, attr, help_text = STAGES[name]
        sub = getattr(importlib.import_module(module), attr)
        command = typer.main.get_command(sub)
        command.name = name
        command.help = command.help or help_text
        command.short_help = help_text
        return command


# Incidents patrol lists in the terminal, the most severe first; the report has them all.
TERMINAL_INCIDENTS = 20

app = typer.Typer(
    cls=_Door,
    help="mamori (守り): active cyber defence for the networks you own.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@functools.cache
def _err() -> Console:
    """Messages, progress and summaries (stderr). Rich is imported on first use: a command that
    prints nothing there (``--version``, ``sql``, ``flows`` to a file) does not pay for it."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)  # one message, one line: never wrapped


def _progress(verb: str) -> Progress:
    """The byte-progress bar of a long command (``ingest``, ``patrol``), on stderr, gone when done."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn(f"[bold]{verb}[/] {{task.description}}"),
        BarColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=_err(),
        transient=True,
        # Rich redraws from its own thread, taking the GIL from the pipeline each time: 1.5 % of
        # a core at its default 10 per second, half that at 4 (still smooth for a bar).
        refresh_per_second=4,
    )


@functools.cache
def _out() -> Console:
    """Command output (stdout)."""
    from rich.console import Console

    return Console()


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Processes serving requests (one per core for TAXII and API read load)."
        ),
    ] = 1,
) -> None:
    """Serve the console, the REST API, TAXII 2.1 and the CrowdSec decision stream."""
    from mamori.web.cli import serve as run

    run(host=host, port=port, workers=workers)


class TableName(StrEnum):
    conn = "conn"
    dns = "dns"
    http = "http"
    ssl = "ssl"
    ssh = "ssh"
    ftp = "ftp"
    smtp = "smtp"


class OutFormat(StrEnum):
    jsonl = "jsonl"
    parquet = "parquet"
    zeek = "zeek"


class SqlFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _inputs(paths: list[Path], captures_only: bool = False) -> list[Input]:
    """Files as given, folders expanded, each recognised by its content (capture or log)."""
    from mamori.sensors.inputs import CAPTURE, discover

    found = discover(paths)
    for err in found.errors:
        _err().print(f"[red]error[/]: {err}")
    if found.errors:
        raise typer.Exit(2)
    chosen = [i for i in found.inputs if i.kind == CAPTURE or not captures_only]
    if not chosen:
        what = "captures" if captures_only else "captures or logs"
        _err().print(f"[red]error[/]: no {what} found in the given inputs")
        raise typer.Exit(2)
    return chosen


def _version(value: bool) -> None:
    if value:
        _out().print(f"mamori {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """mamori (守り): active cyber defence for the networks you own."""


@app.command()
def ingest(
    inputs: Annotated[list[Path], typer.Argument(help="Captures, log files, or folders of them.")],
    lake: Annotated[Path, typer.Option("--lake", help="Lake folder to write the tables into.")],
    config: Annotated[Path | None, typer.Option(help="Settings file (TOML).")] = None,
) -> None:
    """Turn captures (conn, dns, http, ssl, ssh, ftp, smtp) and logs (winevt, syslog, auth, …)
    into the lake's tables."""
    from mamori.flows.collector import quiet_imports
    from mamori.flows.memory import prepare_ingest_process

    prepare_ingest_process()  # before pyarrow loads: it picks its allocator then (memory.py)
    program = _is_program()
    if program:
        _as_kernel_program()
    with quiet_imports():
        import rich.progress  # noqa: F401  (the bar's, imported with the rest)

        from mamori.flows.workers import LakeIngest
        from mamori.lake.writer import LakeWriter
        from mamori.sensors.inputs import CAPTURE
        from mamori.sensors.logingest import ingest_log
        from mamori.sensors.registry import registered_sensors

    settings = load_settings(config)
    chosen = _inputs(inputs)
    total = sum(i.path.stat().st_size for i in chosen)
    started = time.perf_counter()
    done = 0
    stats: list = []
    with (
        LakeIngest(settings, lake) as ingester,
        LakeWriter(lake, compression=settings.lake_compression) as writer,
        _progress("ingest") as progress,
    ):
        task = progress.add_task("", total=total)
        sensors = registered_sensors() if any(i.kind != CAPTURE for i in chosen) else {}
        for item in chosen:
            path = item.path
            progress.update(task, description=path.name)
            base = done

            def advance(nbytes: int, base: int = base, size: int = path.stat().st_size) -> None:
                progress.update(task, completed=base + min(nbytes, size))

            if item.kind == CAPTURE:
                stats.append(ingester.capture(path, advance))
            else:
                stats.append(
                    ingest_log(path, sensors[item.kind], writer, timezone=settings.log_timezone)
                )
            done += path.stat().st_size
            progress.update(task, completed=done)
    elapsed = time.perf_counter() - started
    _report(stats, elapsed)
    code = 1 if all(s.error for s in stats) else 0
    if program:
        _exit_now(code)
    if code:
        raise typer.Exit(code)


def _is_program() -> bool:
    """Whether this process is the ``mamori`` command itself (its console script, or ``python -m
    mamori.cli``), not a library caller or a test runner invoking the command in its own
    process: only then may a command change process-wide state or end the process."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "mamori.cli":
        return True
    return Path(getattr(main, "__file__", None) or "").name == "mamori"


def _as_kernel_program() -> None:
    """What a command's own process sets up before it loads any kernel; its forked ingest
    workers inherit both.

    Numba imports SciPy's BLAS bindings (``numba.np.linalg.ensure_blas``) the first time any
    kernel loads from its cache, only to learn whether ``np.dot`` and ``np.linalg`` may compile:
    0.15-0.2 CPU-s per ingest process for a library no ingest kernel calls. Without SciPy, Numba
    refuses those two at compile time, with a message naming SciPy. And cached kernels load
    without Numba's compiler set-up (``jitcache.quick_cache_loads``)."""
    from mamori.flows.memory import WithoutScipy, hide
    from mamori.jitcache import quick_cache_loads

    hide(WithoutScipy)
    quick_cache_loads()


def _exit_now(code: int) -> None:
    """End the process once a command's work is written and reported, without the interpreter's
    teardown: freeing every module and object of an ingest (Numba's and LLVM's included) took
    0.4-0.5 CPU-s, the last 0.6 s of the workload's wall time, with nothing left to write.

    Everything an ordinary exit does that matters still happens first: the atexit handlers run
    (logging's flush, multiprocessing's child clean-up, weakref finalizers) and stdout and stderr
    are flushed. Any other live non-daemon thread means work may still be under way: then the
    ordinary exit is taken."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: what could be written was
        pass
    os._exit(code)


def _report(stats: list, elapsed: float) -> None:
    from rich.table import Table

    from mamori.schema import NETWORK_TABLES, TABLES

    _problems(stats)
    packets = sum(s.packets for s in stats)
    nbytes = sum(s.bytes for s in stats)
    logs = sum(1 for s in stats if hasattr(s, "sensor"))
    what = f"{len(stats) - logs} capture(s)" + (f", {logs} log file(s)" if logs else "")
    table = Table(title=f"{what}, {packets:,} packets in {elapsed:.2f} s")
    table.add_column("table")
    table.add_column("records", justify="right")
    table.add_column("records/s", justify="right")
    for name in TABLES:
        n = sum(s.rows.get(name, 0) for s in stats)
        if name == "alerts" or (n == 0 and name not in NETWORK_TABLES):
            continue
        table.add_row(name, f"{n:,}", f"{n / elapsed:,.0f}" if elapsed > 0 else "-")
    table.caption = (
        f"{packets / elapsed:,.0f} packets/s, {nbytes / elapsed / 1e6:,.1f} MB/s"
        if elapsed > 0
        else ""
    )
    _err().print(table)


def _problems(stats: list) -> None:
    """One line per input that could not be read whole: captures and logs alike."""
    for s in stats:
        if s.error:
            _err().print(f"[red]error[/]: {s.error}")
        elif s.problem:
            kept = (
                f"kept {s.records:,} records before it"
                if hasattr(s, "sensor")
                else f"kept {s.packets} packets before it"
            )
            _err().print(f"[yellow]warning[/]: {s.problem} ({kept})")
        for notice in getattr(s, "notices", []):  # read, but not (fully) analysed
            _err().print(f"[yellow]warning[/]: {notice}")
        for warning in getattr(s, "warnings", [])[:5]:
            _err().print(f"[yellow]skipped[/]: {warning}")
        more = getattr(s, "skipped", 0) - len(getattr(s, "warnings", [])[:5])
        if more > 0:
            _err().print(f"[yellow]skipped[/]: {s.path}: {more:,} more unreadable records")


@app.command()
def patrol(
    inputs: Annotated[list[Path], typer.Argument(help="Captures, log files, or folders of them.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for report.json and report.html.")
    ] = Path("patrol-report"),
    lake: Annotated[
        Path | None, typer.Option("--lake", help="Lake folder (default: OUT/lake).")
    ] = None,
    params: Annotated[
        Path | None, typer.Option("--params", help="Detector parameters (YAML).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Settings file (TOML).")] = None,
) -> None:
    """The main job: ingest captures and logs, run every detector, correlate incidents, write the
    report."""
    program = _is_program()
    if program:
        # As ``ingest``: the Arrow pool chosen and pandas hidden before pyarrow loads, so the
        # ingest workers are forked (below, before the progress bar's thread starts); no SciPy
        # (no stage of patrol uses it); the process ends without the interpreter's teardown.
        from mamori.flows.memory import prepare_ingest_process

        prepare_ingest_process()
        _as_kernel_program()
    from mamori.flows.collector import quiet_imports

    with quiet_imports():
        import rich.progress  # noqa: F401  (the bar's, imported with the rest)
        from rich.table import Table

        from mamori.correlate.incidents import host_aliases
        from mamori.detect.base import DetectorConfigError, load_params
        from mamori.patrol import patrol as run_patrol
        from mamori.schema.alerts import SEVERITIES

        settings = load_settings(config)
        found = _inputs(inputs)
        try:
            chosen = load_params(params)  # (imports the detectors)
            host_aliases(settings.host_addresses)
        except (DetectorConfigError, ValueError) as exc:
            _err().print(f"[red]error[/]: {exc}")
            raise typer.Exit(2) from None
        if program:
            from mamori.flows.workers import LakeIngest
    total = sum(i.path.stat().st_size for i in found)
    done: dict[Path, int] = {}
    started = time.perf_counter()
    ingester = None
    if program:
        # (after the imports: the workers fork now, and inherit the collector's state)
        ingester = LakeIngest(settings, lake or out / "lake")
    with _progress("patrol") as progress:
        task = progress.add_task("ingest", total=total)

        def advance(path: Path, nbytes: int) -> None:
            done[path] = min(nbytes, path.stat().st_size)
            progress.update(task, completed=sum(done.values()), description=path.name)

        result = run_patrol(
            found, lake or out / "lake", out, settings, chosen, advance, ingester=ingester
        )
    elapsed = time.perf_counter() - started
    _problems([*result.captures, *result.logs])
    for det, err in result.failed_detectors.items():
        _err().print(f"[red]detector failed[/]: {det}: {err}")
    what = f"{len(result.captures)} capture(s)" + (
        f", {len(result.logs)} log file(s)" if result.logs else ""
    )
    table = Table(title=f"patrol: {what} in {elapsed:.1f} s")
    for col in ("severity", "incident", "techniques", "attackers", "victims"):
        table.add_column(col)
    # The most severe first (correlation orders them so); the rest are in the report. A busy
    # day's hundreds of low ones would scroll the critical ones away, and laying out 700 rows
    # took 0.35 s of the workload's patrol.
    shown = result.incidents[:TERMINAL_INCIDENTS]
    for inc in shown:
        table.add_row(
            inc.severity,
            inc.title,
            ", ".join(inc.techniques),
            ", ".join(inc.attackers[:3]) + (" …" if len(inc.attackers) > 3 else ""),
            ", ".join(inc.victims[:3]) + (" …" if len(inc.victims) > 3 else ""),
        )
    summary = result.report["summary"]
    table.caption = (
        f"{summary['packets']:,} packets, {summary['connections']:,} connections, "  # type: ignore[index]
        f"{summary['log_records']:,} log records, "  # type: ignore[index]
        f"{summary['alerts']} alerts, {summary['incidents']} incidents → {result.html_path}"  # type: ignore[index]
    )
    if len(shown) < len(result.incidents):
        rest = Counter(i.severity for i in result.incidents[len(shown) :])
        counts = ", ".join(f"{rest[s]} {s}" for s in reversed(SEVERITIES) if rest[s])
        table.caption += f"\n{sum(rest.values())} less severe not shown ({counts}): see the report"
    _err().print(table)
    code = 1 if all(s.error for s in [*result.captures, *result.logs]) else 0
    if program:
        _exit_now(code)
    if code:
        raise typer.Exit(code)


@app.command()
def flows(
    capture: Annotated[Path, typer.Argument(help="One capture file.")],
    table: Annotated[
        TableName, typer.Option("--table", help="Which table to write.")
    ] = TableName.conn,
    fmt: Annotated[OutFormat, typer.Option("--format", help="Output format.")] = OutFormat.jsonl,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Output file (default stdout).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Settings file (TOML).")] = None,
) -> None:
    """Write one table of one capture with Zeek's field names (``--format zeek``: Zeek's TSV log)."""
    program = _is_program()
    if program:
        _as_kernel_program()
    import pyarrow as pa

    from mamori.flows.pipeline import tables_of
    from mamori.lake.export import write_table
    from mamori.schema import schema_of

    settings = load_settings(config)
    [path] = [i.path for i in _inputs([capture], captures_only=True)]
    tables, stats = tables_of([path], settings)
    for s in stats:
        if s.error:
            _err().print(f"[red]error[/]: {s.error}")
            raise typer.Exit(1)
        if s.problem:
            _err().print(f"[yellow]warning[/]: {s.problem} (kept {s.packets} packets before it)")
        for notice in s.notices:
            _err().print(f"[yellow]warning[/]: {notice}")
    data = tables.get(table.value)
    if data is None:
        data = schema_of(table.value).empty_table()
    data = data.sort_by([("ts", "ascending")]) if data.num_rows else data
    if fmt is OutFormat.parquet and output is None:
        _err().print("[red]error[/]: --format parquet needs -o FILE")
        raise typer.Exit(2)
    write_table(table.value, pa.table(data), fmt.value, output, sys.stdout)
    if program:
        _exit_now(0)  # the output file is closed, stdout is flushed there


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL over the lake's tables (conn, dns, http, …).")],
    lake: Annotated[Path, typer.Option("--lake", help="Lake folder.")],
    fmt: Annotated[SqlFormat, typer.Option("--format", help="Output format.")] = SqlFormat.table,
    limit: Annotated[int, typer.Option(help="Rows shown in table format.")] = 100,
) -> None:
    """Run DuckDB SQL over views of the lake's tables."""
    import duckdb
    from rich.table import Table

    from mamori.lake.query import LakeError, connect

    try:
        con = connect(lake)
        rel = con.sql(query)
    except (LakeError, duckdb.Error) as exc:
        _err().print(f"[red]error[/]: {str(exc).splitlines()[0]}")
        raise typer.Exit(1) from None
    if rel is None:
        return
    if fmt is SqlFormat.csv:
        _csv(rel)
        return
    if fmt is SqlFormat.json:
        import json

        cols = rel.columns
        for row in rel.fetchall():
            _out().print_json(json.dumps(dict(zip(cols, row, strict=True)), default=str))
        return
    rows = rel.limit(limit).fetchall()
    t = Table(*rel.columns)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    _out().print(t)


def _csv(rel: object) -> None:
    import csv

    writer = csv.writer(sys.stdout)
    writer.writerow(rel.columns)  # type: ignore[attr-defined]
    for row in rel.fetchall():  # type: ignore[attr-defined]
        writer.writerow(row)


if __name__ == "__main__":
    app()
