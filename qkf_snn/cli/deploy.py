"""`qkf deploy check`: does an exported NIR graph fit each neuromorphic chip, and why not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from qkf_snn.errors import UserError

app = typer.Typer(help="Check an exported graph against neuromorphic chips.", no_args_is_help=True)


@app.command("check")
def check(
    graph: Annotated[Path, typer.Argument(help="The .nir file of `qkf export nir`.", show_default=False)],
    platform: Annotated[
        str,
        typer.Option(help="loihi2, spinnaker2, speck, xylo, truenorth (comma-separated) or all."),
    ] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Markdown report to write (default: FILE.deploy.md next to the graph)."),
    ] = None,
) -> None:
    """Per platform, each documented constraint (limit, measured value, PASS/FAIL, source), the
    cores the layer-to-core packing needs, and an energy bound where the profiler has constants.
    Exit status 0 when every platform passes, 1 when any fails, 2 for bad input."""
    from qkf_snn.hardware.deployment import PLATFORMS, check_graph, get_platforms, markdown
    from qkf_snn.hardware.nir.io import read_graph
    from qkf_snn.io import atomic_write_bytes, check_destination

    try:
        platforms = get_platforms(platform)
    except KeyError as err:
        raise UserError(
            f"--platform: unknown platform {err.args[0]!r} (known: {', '.join(PLATFORMS)}, all)"
        ) from None
    if not platforms:
        raise UserError("--platform: no platform named")
    nir_graph = read_graph(graph)
    # the report's destination is checked before the analysis, not after it
    out = check_destination(report or graph.with_suffix(".deploy.md"), "--report", "file")
    if not out.parent.is_dir():
        raise UserError(f"--report {out}: directory {out.parent} does not exist")
    result = check_graph(nir_graph, platforms, path=str(graph))
    atomic_write_bytes(out, markdown(result).encode())
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=1))
    else:
        _print(result, out)
    if not result.passed:
        raise typer.Exit(1)


def _print(result, out: Path) -> None:
    console = Console()
    f = result.facts
    console.print(
        f"{result.path}: {f.neurons:,} neurons ({f.hidden_neurons:,} hidden, {f.output_neurons:,} output), "
        f"{f.synapses:,} synapses per "
        f"step, max fan-in {f.max_fan_in:,}, max fan-out {f.max_fan_out:,}, weight bits {f.weight_bits}, "
        f"threshold bits {f.threshold_bits}, {f.multi_input_nodes} nodes with more than one input",
        highlight=False,
    )
    for r in result.platforms:
        table = Table(title=f"{r.title}: {r.verdict}, {r.cores:,} of {r.cores_available:,} cores")
        for col, width in (("constraint", 18), ("limit", 10), ("value", 10), ("pass", 11)):
            table.add_column(col, overflow="fold", min_width=width)
        # full sources are in the Markdown report and --json; one line each here
        table.add_column("source", no_wrap=True, overflow="ellipsis", max_width=40)
        for c in r.constraints:
            ok = {True: "[green]PASS[/green]", False: "[red]FAIL[/red]", None: "not checked"}[c.passed]
            table.add_row(c.name, _cell(c.limit), _cell(c.value), ok, c.source.split(": ", 1)[-1])
        console.print(table)
        if r.energy:
            console.print(
                f"energy bound {r.energy['upper_bound_pj_per_step']:,.0f} pJ per step "
                f"({r.energy['protocol']}; {r.energy_note})",
                highlight=False,
            )
        else:
            console.print(f"energy: not reported ({r.energy_note})", highlight=False)
    verdicts = ", ".join(f"{r.key} {r.verdict}" for r in result.platforms)
    console.print(f"{verdicts}; report written to {out}", highlight=False)


def _cell(v) -> str:
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "-"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)
