"""`qkf data ...` (placeholder until the datasets issue lands)."""

import typer

app = typer.Typer(help="Prepare, inspect and synthesise datasets.", no_args_is_help=True)
