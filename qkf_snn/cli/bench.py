"""`qkf bench ...` (placeholder until the fast-neuron issue lands)."""

import typer

app = typer.Typer(help="Speed benchmarks; results go to docs/benchmarks.md.", no_args_is_help=True)
