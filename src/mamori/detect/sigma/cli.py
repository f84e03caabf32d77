"""``mamori sigma``: what compiles, and running rules over a lake."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from mamori.detect.sigma import CompiledRules

app = typer.Typer(
    help="Sigma rules: check what compiles, run them over logs.", no_args_is_help=True
)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True, highlight=False)

RulesArg = Annotated[list[Path], typer.Argument(help="Sigma rule files or folders of them.")]
PipelineOpt = Annotated[
    list[Path] | None,
    typer.Option("--pipeline", "-p", help="Extra pipeline file(s) (docs/sigma.md)."),
]


@app.callback()
def main() -> None:
    """Sigma rules: check what compiles, run them over logs."""


def _compile(rules: list[Path], pipelines: list[Path] | None) -> CompiledRules:
    from mamori.detect.sigma import compile_rules, load_pipeline
    from mamori.detect.sigma.pipeline import PipelineError

    missing = [str(p) for p in [*rules, *(pipelines or [])] if not p.exists()]
    if missing:
        console.print(f"[red]error[/]: no such file or folder: {', '.join(missing)}")
        raise typer.Exit(2)
    try:
        pipeline = load_pipeline(pipelines or ())
    except PipelineError as exc:
        console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2) from None
    return compile_rules(rules, pipeline)


@app.command()
def check(
    rules: RulesArg,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    pipeline: PipelineOpt = None,
) -> None:
    """Compile every rule: each one compiles (and over which sources) or cannot (and why).

    Exit code 1 when any rule cannot be compiled, 2 on bad input.
    """
    compiled = _compile(rules, pipeline)
    sources: dict[str, list[str]] = {}
    for unit in compiled.compiled:
        s = unit.source
        where = ",".join(f"{k}={'|'.join(map(str, v))}" for k, v in s.where.items())
        sources.setdefault(unit.rule.path + "\0" + unit.rule.id, []).append(
            f"{s.table.name}({where})" if where else s.table.name
        )
    rows = [
        {
            "path": r.path,
            "id": r.id,
            "title": r.title,
            "level": r.level,
            "logsource": r.logsource,
            "compiles": True,
            "sources": sources.get(r.path + "\0" + r.id, []),
            "reason": None,
        }
        for r in compiled.rules
    ] + [
        {
            "path": u.path,
            "id": u.rule_id,
            "title": u.title,
            "compiles": False,
            "reason": u.reason,
        }
        for u in compiled.unusable
    ]
    rows.sort(key=lambda r: (str(r["path"]), str(r["id"])))
    if as_json:
        reasons = Counter(str(u.reason) for u in compiled.unusable)
        doc = {
            "total": compiled.total,
            "compiled": len(compiled.rules),
            "unusable": len(compiled.unusable),
            "reasons": dict(reasons.most_common()),
            "rules": rows,
        }
        out.print_json(json.dumps(doc), highlight=False)
    else:
        for r in rows:
            if r["compiles"]:
                out.print(f"compiles      {r['path']}  ({', '.join(r['sources'])})", markup=False)
            else:
                out.print(f"cannot        {r['path']}: {r['reason']}", markup=False)
        console.print(f"{len(compiled.rules)} of {compiled.total} rules compile")
    if compiled.unusable:
        raise typer.Exit(1)


@app.command()
def run(
    rules: RulesArg,
    lake: Annotated[Path, typer.Option("--lake", help="The lake folder (mamori ingest --lake).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines of matches on stdout.")
    ] = False,
    pipeline: PipelineOpt = None,
) -> None:
    """Run rules over a lake's log tables: every matching record, per rule."""
    import polars as pl

    from mamori.detect.engine import lake_frames
    from mamori.detect.sigma import evaluate

    if not lake.is_dir():
        console.print(f"[red]error[/]: {lake}: not a lake folder")
        raise typer.Exit(2)
    compiled = _compile(rules, pipeline)
    tables = sorted({u.source.table.name for u in compiled.compiled})
    try:
        matches = evaluate(compiled, lake_frames(lake, tables))
    except (OSError, pl.exceptions.PolarsError) as exc:
        console.print(f"[red]error[/]: {lake}: cannot read the lake: {exc}")
        raise typer.Exit(2) from None
    if as_json:
        for row in matches.with_columns(pl.col("ts").dt.to_string()).iter_rows(named=True):
            out.print(json.dumps(row), markup=False, highlight=False)
    else:
        per_rule = matches.group_by("rule_id", "title", "level").len().sort("len", descending=True)
        for rule_id, title, level, n in per_rule.iter_rows():
            out.print(f"{n:8d}  {level:<13} {title}  [{rule_id}]", markup=False)
    console.print(
        f"{matches.height} match(es) of {matches['rule_id'].n_unique()} rule(s); "
        f"{len(compiled.rules)} of {compiled.total} rules compiled"
    )
