"""Typer command-line interface (`qkf`). The only layer that knows about the terminal."""
