"""`qkf export nir` and `qkf verify nir`: NIR graph of a checkpoint, and its bit-exact check in Norse."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

export_app = typer.Typer(help="Export a checkpoint to a neuromorphic format.", no_args_is_help=True)
verify_app = typer.Typer(help="Check an exported graph against the PyTorch model.", no_args_is_help=True)


@export_app.command("nir")
def export_nir(
    checkpoint: Annotated[Path, typer.Argument(help="best.pt or last.pt of a run.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The .nir file to write.", show_default=False)],
    dt: Annotated[
        float | None,
        typer.Option(help="Seconds (or any unit) per model step (default: the target's; 1.0 for nir/norse)."),
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            help="Form of the file: portable (stock snnTorch + Norse + qkf), snntorch, norse or nir."
        ),
    ] = "portable",
    weight_bits: Annotated[
        int | None,
        typer.Option(
            "--weight-bits",
            help="Post-training quantization to N-bit integer weights (2-16); scales folded into thresholds.",
        ),
    ] = None,
    per_channel: Annotated[
        bool,
        typer.Option("--per-channel/--per-layer", help="One weight scale per output channel, or per layer."),
    ] = True,
    layers: Annotated[bool, typer.Option("--layers/--no-layers", help="Print the per-layer table.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Write the whole model (both encoders and the fusion for AV) as one NIR graph, BN folded."""
    from qkf_snn.hardware.nir.checkpoint import export_checkpoint
    from qkf_snn.models.quant import check_bits

    if weight_bits is not None:  # one line naming the option, before any work
        check_bits(weight_bits, "--weight-bits")
    result = export_checkpoint(
        checkpoint, out, dt=dt, target=target, weight_bits=weight_bits, per_channel=per_channel
    )
    s = result.summary
    if as_json:
        typer.echo(json.dumps({"path": str(result.path), **s.to_dict()}, indent=1))
        return
    console = Console()
    if layers:
        table = Table(title=f"{result.path}: per-layer resources (one time step, one sample)")
        for col in ("node", "op", "shape", "neurons", "synapses", "params", "max fan-in", "max fan-out"):
            table.add_column(col, justify="left" if col in ("node", "op", "shape") else "right")
        table.add_column("weights")
        for r in s.layers:
            if r.neurons or r.synapses:
                shape = "×".join(map(str, r.shape))
                nums = (r.neurons, r.synapses, r.params, r.fan_in, r.fan_out)
                table.add_row(r.name, r.op, shape, *(f"{v:,}" if v else "" for v in nums), r.precision)
        console.print(table)
    console.print(
        f"wrote {result.path}: {s.nodes} nodes, {s.edges} edges; {s.neurons:,} neurons, "
        f"{s.synapses:,} synapses, {s.params:,} nonzero parameters; "
        f"max fan-in {s.max_fan_in:,}, max fan-out {s.max_fan_out:,}; "
        f"dt={s.dt}, T={s.time_steps}; target {result.graph.metadata['target']} "
        f"(for {result.graph.metadata['readers']}); weights {_precision(result.graph.metadata)}",
        highlight=False,
    )


def _precision(meta: dict) -> str:
    if "weight_bits" not in meta:
        return "float32"
    return (
        f"int{meta['weight_bits']} {meta['quant_granularity']} (logits = output x {meta['output_scale']:g})"
    )


@verify_app.command("nir")
def verify_nir(
    graph: Annotated[Path, typer.Argument(help="The .nir file of `qkf export nir`.", show_default=False)],
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="The checkpoint it was exported from.", show_default=False)
    ],
    data: Annotated[Path | None, typer.Option("--data", help="Prepared cache (default: the run's).")] = None,
    samples: Annotated[int, typer.Option(help="Clips, spread evenly over the split.")] = 8,
    split: Annotated[str, typer.Option(help="val, test or train.")] = "val",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Clips per batch.")] = 8,
    precision: Annotated[
        str, typer.Option(help="pinned (float64 synapses on both sides, float32 neurons) or float32.")
    ] = "pinned",
    fold_check: Annotated[
        bool,
        typer.Option("--fold-check/--no-fold-check", help="Also compare the folded with the original model."),
    ] = True,
    nodes: Annotated[
        bool, typer.Option("--nodes", help="List every compared node, not only mismatches.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    reader: Annotated[
        str, typer.Option(help="Who runs the file: qkf, snntorch, norse (comma-separated) or all.")
    ] = "qkf",
) -> None:
    """Run the graph step by step in each reader and compare spikes and logits with the model
    (BN folded). Exit status 0 when every reader loads it and every spike is identical, 1 otherwise."""
    from qkf_snn.hardware.nir.checkpoint import verify_readers

    reports = verify_readers(
        graph,
        checkpoint,
        data,
        samples=samples,
        split=split,
        batch_size=batch_size,
        precision=precision,
        check_fold=fold_check,
        readers=reader,
    )
    if as_json:
        docs = [
            {
                **asdict(r),
                "passed": r.passed,
                "loaded": r.loaded,
                "spikes_compared": r.spikes_compared,
                "spike_mismatches": r.spike_mismatches,
            }
            for r in reports
        ]
        doc = docs[0] if len(docs) == 1 else {"passed": all(r.passed for r in reports), "readers": docs}
        typer.echo(json.dumps(doc, indent=1))
    else:
        for r in reports:
            _print_report(r, every_node=nodes)
        if len(reports) > 1:
            _print_readers(reports)
    if not all(r.passed for r in reports):
        raise typer.Exit(1)


def _print_readers(reports) -> None:
    table = Table(title="readers")
    for col in ("reader", "loaded", "nodes", "spikes compared", "mismatches", "first diverging node"):
        table.add_column(
            col, justify="left" if col in ("reader", "loaded", "first diverging node") else "right"
        )
    for r in reports:
        first = r.first_divergence
        table.add_row(
            r.reader,
            "yes" if r.loaded else f"no ({r.load_error})",
            f"{r.graph_nodes:,}",
            f"{r.spikes_compared:,}",
            f"{r.spike_mismatches:,}" if r.loaded else "",
            f"{first.node} (step {first.step})" if first else "",
        )
    Console().print(table)


def _print_report(r, every_node: bool) -> None:
    console = Console()
    if not r.loaded:
        console.print(f"[red]FAILED[/red]: reader {r.reader} {r.load_error}", highlight=False)
        return
    rows = [n for n in r.nodes if every_node or n.mismatches]
    if rows:
        table = Table(title="compared nodes" if every_node else "nodes with mismatching spikes")
        for col in ("node", "op", "values", "spikes (ref)", "mismatches", "max |diff|"):
            table.add_column(col, justify="left" if col in ("node", "op") else "right")
        for n in rows:
            spikes = f"{n.spikes:,}" if n.spiking else ""
            table.add_row(
                n.name, n.op, f"{n.compared:,}", spikes, f"{n.mismatches:,}", f"{n.max_abs_diff:.3g}"
            )
        console.print(table)
    spiking = [n for n in r.nodes if n.spiking]
    console.print(
        f"reader {r.reader}, {r.graph_nodes} nodes: "
        f"{r.samples} samples × {r.time_steps} steps, precision {r.precision}, dt={r.dt}, "
        f"reference model {r.quantization}: "
        f"{len(spiking)} spiking nodes, {r.spikes_compared:,} spike values compared, "
        f"{r.spike_mismatches:,} differ; per-step logits max |diff| {r.logits_max_abs_diff:.3g}"
        f" ({len(r.unmatched)} graph nodes have no PyTorch counterpart)",
        highlight=False,
    )
    if r.fold is not None:
        f = r.fold
        console.print(
            f"BN folding (float32, folded vs original model): spike agreement {f.spike_agreement:.6%} "
            f"({f.spikes_differing:,} of {f.spikes_total:,} differ), "
            f"logits max |diff| {f.logits_max_abs_diff:.3g}, "
            f"predictions agree on {f.predictions_agreeing}/{f.samples}",
            highlight=False,
        )
    if r.passed:
        console.print("[green]PASSED[/green]: identical spikes at every compared node and step")
    elif r.first_divergence is not None:
        d = r.first_divergence
        console.print(
            f"[red]FAILED[/red]: first divergence at node {d.node}, step {d.step}: "
            f"{d.mismatches:,} of {d.compared:,} spikes differ",
            highlight=False,
        )
    else:
        console.print(
            f"[red]FAILED[/red]: logits differ (max |diff| {r.logits_max_abs_diff:.3g})", highlight=False
        )
