"""``mamori sigma``: what compiles, and running rules over a lake."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="Sigma rules: check what compiles, run them over logs.", no_args_is_help=True
)
console = Console(stderr=True, soft_wrap=True)


@app.callback()
def main() -> None:
    """Sigma rules: check what compiles, run them over logs."""


@app.command()
def check(
    rules: Annotated[list[Path], typer.Argument(help="Sigma rule files or folders of them.")],
) -> None:
    """Parse every rule; list the ones that cannot be used, with the reason."""
    from sigma.collection import SigmaCollection

    files = [f for p in rules for f in (sorted(p.rglob("*.yml")) if p.is_dir() else [p])]
    bad = 0
    for f in files:
        try:
            SigmaCollection.from_yaml(f.read_text(encoding="utf-8"))
        except Exception as exc:  # pySigma raises many error types; each is the rule's problem
            bad += 1
            console.print(f"[red]unusable[/]: {f}: {exc}")
    console.print(f"{len(files) - bad} of {len(files)} rules parse")
    if bad:
        raise typer.Exit(1)
