"""`qkf profile` (placeholder until the profiler issue lands)."""

import typer


def profile() -> None:
    """Spike, SOP and energy profile of a checkpoint."""
    typer.echo("qkf profile: not yet available (lands with the profiler issue).")
    raise typer.Exit(1)
