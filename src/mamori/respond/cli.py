"""Commands of the respond stage (mounted by mamori.cli)."""

import typer

app = typer.Typer(no_args_is_help=True)
