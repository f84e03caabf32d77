"""Commands of the cases stage (mounted by mamori.cli)."""

import typer

app = typer.Typer(no_args_is_help=True)
evidence_app = typer.Typer(no_args_is_help=True)
keys_app = typer.Typer(no_args_is_help=True)
report_app = typer.Typer(no_args_is_help=True)
