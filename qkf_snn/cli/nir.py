"""`qkf export nir` and `qkf verify nir` (placeholder until the NIR issue lands)."""

import typer

export_app = typer.Typer(help="Export a checkpoint to a neuromorphic format.", no_args_is_help=True)
verify_app = typer.Typer(help="Check an exported graph against the PyTorch model.", no_args_is_help=True)
