"""`qkf demo` (placeholder until the demo issue lands)."""

import typer


def demo() -> None:
    """End-to-end demo on synthetic data."""
    typer.echo("qkf demo: not yet available (lands with the demo issue).")
