"""`qkf train` and `qkf eval` (placeholder until the training issue lands)."""

import typer


def train() -> None:
    """Train a model."""
    typer.echo("qkf train: not yet available (lands with the training issue).")
    raise typer.Exit(1)


def evaluate() -> None:
    """Evaluate a checkpoint."""
    typer.echo("qkf eval: not yet available (lands with the training issue).")
    raise typer.Exit(1)
