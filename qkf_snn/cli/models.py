"""`qkf models`: the registered models with their parameter counts."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from qkf_snn.errors import UserError


def models(
    pattern: Annotated[str, typer.Argument(help="Shell-style filter, e.g. 'qkf_av*'.")] = "*",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """List registered models with their parameter counts (built on the CPU, nothing downloaded)."""
    from qkf_snn.models import count_parameters, create_model, list_models  # torch: import when used

    names = list_models(pattern)
    if not names:
        raise UserError(f"PATTERN {pattern!r}: no registered model matches (`qkf models` lists them all)")
    rows = []
    for name in names:
        model = create_model(name)
        rows.append({"name": name, "parameters": count_parameters(model), "summary": _summary(model)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} registered models")
    table.add_column("model")
    table.add_column("parameters", justify="right")
    table.add_column("configuration")
    for row in rows:
        table.add_row(row["name"], f"{row['parameters']:,}", row["summary"])
    Console().print(table)


def _summary(model) -> str:
    config = getattr(model, "config", None)
    if config is None:  # an AV model: describe both encoders
        parts = [f"{m}: {_summary(getattr(model, m))}" for m in getattr(model, "modalities", ())]
        return f"fusion={getattr(model, 'fusion', '?')}; " + "; ".join(parts)
    dims = "/".join(map(str, config.dims))
    depths = "/".join(map(str, config.depths))
    attn = "/".join(config.attention)
    return f"dims {dims}, depths {depths}, {attn}, T={config.time_steps}, in {config.in_channels}ch"
