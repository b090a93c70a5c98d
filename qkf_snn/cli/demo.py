"""`qkf demo`: the main job end to end on synthetic data (the pipeline is qkf_snn/demo.py); this module
checks the options and prints the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from qkf_snn.demo import DemoSettings, failed_checks, run_demo, verdicts
from qkf_snn.errors import UserError
from qkf_snn.io import check_destination


def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("runs/demo"),
    clips: Annotated[int, typer.Option(help="Synthetic clips to generate.")] = 240,
    epochs: Annotated[int | None, typer.Option(help="Epochs per model (default: the demo recipes).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for data and training.")] = 0,
    fresh: Annotated[bool, typer.Option(help="Delete earlier demo results first.")] = False,
) -> None:
    """End-to-end demo on synthetic CREMA-D-layout data (CPU, about a minute on 2 idle cores)."""
    if clips < 60:
        raise UserError(f"--clips {clips}: need at least 60 (10 per emotion) for train/val/test splits")
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs {epochs}: must be at least 1")
    check_destination(out, "--out", "dir")
    if fresh and out.exists():
        import shutil

        shutil.rmtree(out)
    settings = DemoSettings(out=out, clips=clips, epochs=epochs, seed=seed)
    summary = run_demo(settings)
    print_summary(settings.console, summary, out)
    if failed_checks(summary):  # a failed check fails the demo (the summary says where)
        raise typer.Exit(1)


def print_summary(con: Console, summary: dict[str, Any], out: Path) -> None:
    table = Table(title="qkf demo: synthetic CREMA-D, T=4, tiny deployable QKFormer")
    for col in ("model", "val acc", "test acc", "energy / sample", "NIR → Norse"):
        table.add_column(col, justify="right" if col != "model" else "left")
    prof, nir = summary["profile"], summary["nir"]
    energy = prof["energy_uJ_per_sample"]
    nir_text = (
        f"{'PASS' if nir['passed'] else 'FAIL'}: {nir['spike_mismatches']} / {nir['spikes_compared']:,} "
        "spikes differ"
    )
    for modality, row in summary["models"].items():
        is_av = modality == "av"
        table.add_row(
            f"{modality} ({row['model']})",
            f"{row['val_acc']:.3f}",
            f"{row['test_acc']:.3f}",
            f"{energy:.2f} µJ" if is_av and energy is not None else "",
            nir_text if is_av else "",
        )
        if is_av:
            for part in ("audio", "video"):
                if f"test_acc_{part}_head" in row:
                    table.add_row(
                        f"  av: {part} head",
                        f"{row[f'val_acc_{part}_head']:.3f}",
                        f"{row[f'test_acc_{part}_head']:.3f}",
                        "",
                        "",
                    )
    deploy = summary.get("deploy")
    if deploy:
        fits = ", ".join(k for k, p in deploy["platforms"].items() if p["verdict"] == "PASS") or "no chip"
        table.add_row(
            f"av, {deploy['weight_bits']}-bit weights",
            f"{deploy['val_acc']:.3f}",
            f"{deploy['test_acc']:.3f}",
            "",
            f"{'PASS' if deploy['passed'] else 'FAIL'}: {deploy['spike_mismatches']} / "
            f"{deploy['spikes_compared']:,} spikes differ; fits {fits}",
        )
    con.print(table)
    con.print(f"[dim]{summary['protocol']}[/dim]")
    con.print(f"profile report: {prof['report']}")
    for plot in prof["plots"]:
        con.print(f"plot: {plot}")
    con.print(f"NIR graph: {nir['file']}")
    if deploy:
        con.print(
            f"{deploy['weight_bits']}-bit NIR graph: {deploy['file']}; deploy check: {verdicts(deploy)}"
        )
        con.print(f"deploy report: {deploy['report']}")
    con.print(f"training curves and confusion matrices: {out / 'runs'}/<modality>/*.png")
    con.print(f"summary: {out / 'summary.json'}  ({summary['minutes']} min)")
    con.print(f"the README's results block: {out / 'summary.md'}")
