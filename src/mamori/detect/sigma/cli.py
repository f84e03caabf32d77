"""``mamori sigma``: what compiles, and running rules over a lake."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Sigma rules: check what compiles, run them over logs.", no_args_is_help=True
)
