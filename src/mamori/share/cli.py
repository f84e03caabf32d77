"""Commands of the share stage (mounted by mamori.cli)."""

import typer

app = typer.Typer(no_args_is_help=True)
