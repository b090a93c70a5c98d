"""`qkf sweep energy` and `qkf sweep report`: parse options, call qkf_snn.sweep, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qkf_snn.datasets.registry import DATASETS
from qkf_snn.errors import UserError

app = typer.Typer(help="Sweeps over training settings (accuracy against energy).", no_args_is_help=True)


@app.command("energy")
def energy(
    dataset: Annotated[str, typer.Argument(help=", ".join(DATASETS) + ".", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The sweep's folder (shared by every process).")],
    budgets: Annotated[
        str | None, typer.Option(help="Energy budgets per sample, e.g. 2uJ,4uJ,8uJ (pJ, nJ, uJ, µJ, mJ).")
    ] = None,
    weights: Annotated[str | None, typer.Option(help="Energy penalty weights, e.g. 0.1,1,10.")] = None,
    with_relu_twin: Annotated[
        bool, typer.Option("--with-relu-twin", help="Also train the ReLU twin (ANN) as a reference.")
    ] = False,
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0,1,2: every point once per seed.")] = "0",
    energy_model: Annotated[
        str | None,
        typer.Option(help="Energy model to train against and report (default: training's default)."),
    ] = None,
    modality: Annotated[str, typer.Option(help="audio, video or av.")] = "av",
    data: Annotated[
        Path | None, typer.Option("--data", help="Prepared cache (`qkf data prepare --out`).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Recipe (YAML/TOML); default configs/<dataset>_<modality>.yaml."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Any `qkf train` setting as KEY=VALUE (repeatable), e.g. optim.epochs=80."
        ),
    ] = None,
    point: Annotated[
        int | None, typer.Option(help="Only this point (0-based; a SLURM array task's index).")
    ] = None,
    list_points: Annotated[
        bool, typer.Option("--list", help="Print the points (index, name, settings) and stop.")
    ] = False,
) -> None:
    """Train one run per budget or weight, plus the unconstrained run (and the ReLU twin); each is
    selected on validation, tested once and profiled. Finished points are skipped, killed ones resume,
    several processes may share --out. Writes front.md/.json/.csv and pareto.png in --out."""
    from qkf_snn.sweep.energy import (
        SweepSpec,
        normalise_budget,
        normalise_weight,
        parse_list,
        points,
        run_sweep,
    )
    from qkf_snn.training.config import parse_set

    if (budgets is None) == (weights is None):
        raise UserError("give one of --budgets or --weights")
    mode, option, raw = (
        ("budgets", "--budgets", budgets) if budgets is not None else ("weights", "--weights", weights)
    )
    norm = normalise_budget if mode == "budgets" else normalise_weight
    values = [norm(v, option) for v in parse_list(raw, option)]
    try:
        seed_list = [int(s) for s in parse_list(seeds, "--seeds")]
    except ValueError:
        raise UserError(f"--seeds {seeds!r}: give integers, e.g. 0,1,2") from None
    overrides = parse_set(set_ or [])
    if data is not None:
        overrides["data.dir"] = str(data)
    spec = SweepSpec(
        dataset=dataset, modality=modality, out=out, mode=mode, values=values, seeds=seed_list,
        relu_twin=with_relu_twin, energy_model=energy_model, recipe=str(config) if config else None,
        overrides=overrides,
    )  # fmt: skip
    if list_points:
        for p in points(spec):
            settings = " ".join(f"{k}={v}" for k, v in p.overrides.items())
            typer.echo(f"{p.index}\t{p.name}\t{settings}")
        return
    doc = run_sweep(spec, only=point)
    _print_summary(doc, out)


@app.command("report")
def report(
    folder: Annotated[
        Path, typer.Argument(help="The --out folder of `qkf sweep energy`.", show_default=False)
    ],
) -> None:
    """Rewrite the table and pareto.png of a sweep from its finished points; exit 1 if any is missing."""
    from qkf_snn.sweep.energy import report_lock
    from qkf_snn.sweep.report import write_report

    if not folder.is_dir():
        raise UserError(f"DIR {folder}: no such directory")
    with report_lock(folder):
        doc = write_report(folder)
    _print_summary(doc, folder)
    if doc["missing"]:
        raise typer.Exit(1)


def _print_summary(doc: dict, out: Path) -> None:
    typer.echo((out / "front.md").read_text())
    if doc["missing"]:
        typer.echo(f"{len(doc['missing'])} point(s) not finished: {', '.join(doc['missing'])}")
    typer.echo(f"table: {out / 'front.md'} (.json, .csv); plot: {out / 'pareto.png'}")
