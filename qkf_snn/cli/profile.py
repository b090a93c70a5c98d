"""`qkf profile CHECKPOINT --data DIR`: spikes, synaptic operations and energy of a trained model
over a data split, per layer and per sample, every counting convention side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qkf_snn.errors import UserError
from qkf_snn.io import check_destination


def profile(
    checkpoint: Annotated[
        Path, typer.Argument(help="Checkpoint written by `qkf train` (best.pt or last.pt).")
    ],
    data: Annotated[Path, typer.Option("--data", help="Prepared cache folder (`qkf data prepare --out`).")],
    split: Annotated[str, typer.Option(help="Split to profile.")] = "val",
    samples: Annotated[
        int | None, typer.Option(help="Profile the first N samples of the split (default: all).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: profile-<split> beside the checkpoint).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Samples per forward pass.")] = 16,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    first_layer: Annotated[
        str, typer.Option(help="Paper convention: real-valued first layer counted ×T ('T') or once ('once').")
    ] = "T",
    head: Annotated[str, typer.Option(help="Paper convention: read-out head as 'mac' or 'ac'.")] = "mac",
    integer_inputs: Annotated[
        str, typer.Option(help="Paper convention for integer-stream inputs: ac_count, ac_rate or mac.")
    ] = "ac_count",
    plots: Annotated[bool, typer.Option(help="Write the PNG plots.")] = True,
    weight_bits: Annotated[
        int | None,
        typer.Option(
            "--weight-bits", help="Profile the N-bit quantized model (as `qkf export nir --weight-bits`)."
        ),
    ] = None,
    per_channel: Annotated[
        bool,
        typer.Option("--per-channel/--per-layer", help="With --weight-bits: scales per channel or layer."),
    ] = True,
) -> None:
    """Spike, SOP and energy profile of a checkpoint over a data split (JSON, Markdown, PNG)."""
    from rich.console import Console

    from qkf_snn.hardware.profile import CountOptions, profile_checkpoint, write_report
    from qkf_snn.hardware.profile.report import load_report, rich_tables

    options = CountOptions(first_layer=first_layer, head=head, integer_inputs=integer_inputs)
    if weight_bits is not None:  # one line before any work
        from qkf_snn.models.quant import check_bits

        check_bits(weight_bits, "--weight-bits")
    if not checkpoint.is_file():
        raise UserError(f"CHECKPOINT {checkpoint}: no such file")
    if not data.is_dir():
        raise UserError(f"--data {data}: no such directory")
    if samples is not None and samples < 1:
        raise UserError(f"--samples {samples}: must be at least 1")
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")
    out = check_destination(out or checkpoint.parent / f"profile-{split}", "--out", "dir")
    prof, meta = profile_checkpoint(
        checkpoint, data, split, samples, batch_size, device, weight_bits=weight_bits, per_channel=per_channel
    )
    paths = write_report(prof, out, options, meta, plots=plots)
    console = Console()
    for table in rich_tables(load_report(paths["json"])):
        console.print(table)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")
