"""`qkf train` and `qkf eval`: parse options into config overrides, call the training layer.

Each option of `qkf train` names the config key it sets (``Key("optim.lr")``); see
``qkf_snn/cli/options.py`` for how to add one."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from qkf_snn.cli.options import Key, config_options, overrides
from qkf_snn.datasets.registry import DATASETS

# --- multi-value options ----------------------------------------------------------------------------
# The research code's argparse options take several values (`--num-heads 2 4 6`, nargs='+'); a click
# option takes a fixed number. So each such option takes one token, `2,4,6`, and main() first joins
# the integers that follow it on the command line into that token (join_multi_values), as argparse
# would have consumed them: both spellings work, with any count (the model checks it per stage).
MULTI_VALUE_OPTIONS: set[str] = set()  # filled by _ints() below


class Ints(tuple):
    """The integers of one multi-value option."""


def parse_ints(text: str) -> Ints:
    try:
        return Ints(int(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a list of integers (e.g. 2,4,6 or 2 4 6)") from None


def _ints(flag: str, help: str) -> typer.models.OptionInfo:
    MULTI_VALUE_OPTIONS.add(flag)
    return typer.Option(flag, parser=parse_ints, metavar="N[,N...]", help=help)


Dims = Annotated[Ints | None, _ints("--dims", "Stage widths, e.g. --dims 16 32 64.")]
Depths = Annotated[Ints | None, _ints("--depths", "Blocks per stage, e.g. --depths 2 4 8.")]
Heads = Annotated[Ints | None, _ints("--num-heads", "Heads per stage, e.g. --num-heads 2 4 6.")]
_INTS = re.compile(r"\d+(,\d+)*")


def join_multi_values(argv: list[str]) -> list[str]:
    """``train ... --num-heads 2 4 6 ...`` → ``train ... --num-heads 2,4,6 ...`` (other commands and
    everything after ``--`` are left alone)."""
    if argv[:1] != ["train"]:
        return list(argv)
    joined: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            return [*joined, arg, *argv[i:]]
        joined.append(arg)
        if arg in MULTI_VALUE_OPTIONS:
            start = i
            while i < len(argv) and _INTS.fullmatch(argv[i]):
                i += 1
            if i > start:
                joined.append(",".join(argv[start:i]))
    return joined


@config_options(
    "qkf_snn.training.config:TrainConfig",
    plain=("dataset", "modality", "config", "resume", "overwrite", "set_"),
)
def train(
    dataset: Annotated[str, typer.Argument(help=", ".join(DATASETS) + ".", show_default=False)],
    modality: Annotated[str, typer.Option(help="audio, video or av.")] = "av",
    data: Annotated[
        Path | None,
        typer.Option("--data", "--data-path", help="Prepared cache (`qkf data prepare --out`)."),
        Key("data.dir"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Recipe (YAML/TOML); default configs/<dataset>_<modality>.yaml."),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out/--name from its last.pt.")] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Start the run again even if its directory holds one.")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(help="Registered model (default qkf_<modality>_<size>); qkf_snn: the seed's size."),
        Key("model.name"),
    ] = None,
    size: Annotated[
        str | None, typer.Option(help="tiny or small (the seed's size)."), Key("model.size")
    ] = None,
    embed_dims: Annotated[
        int | None, typer.Option(help="Last stage width E (stages E/4, E/2, E)."), Key("model.embed_dims")
    ] = None,
    dims: Annotated[Dims, Key("model.dims")] = None,
    depths: Annotated[Depths, Key("model.depths")] = None,
    num_heads: Annotated[Heads, Key("model.heads")] = None,
    mlp_ratio: Annotated[
        float | None, typer.Option(help="MLP hidden width / stage width."), Key("model.mlp_ratio")
    ] = None,
    time_steps: Annotated[
        int | None,
        typer.Option("--time-steps", "--time-step", "-T", help="T (divides the cache's T)."),
        Key("data.time_steps"),
    ] = None,
    neuron: Annotated[
        str | None, typer.Option(help="lif, plif, if, qif, or relu (the ANN twin)."), Key("model.neuron.kind")
    ] = None,
    tau: Annotated[
        float | None, typer.Option(help="Membrane time constant."), Key("model.neuron.tau")
    ] = None,
    surrogate: Annotated[
        str | None,
        typer.Option(help="sigmoid, atan, fast_sigmoid, triangular, ..."),
        Key("model.neuron.surrogate"),
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="Neuron backend (auto, reference, ...)."), Key("model.neuron.backend")
    ] = None,
    fusion: Annotated[
        str | None,
        typer.Option(help="AV: concat, sum or qk (cross-modal Q-K attention)."),
        Key("model.fusion"),
    ] = None,
    fusion_stage: Annotated[
        int | None, typer.Option(help="AV qk: stage after which the streams meet."), Key("model.fusion_stage")
    ] = None,
    ogm_ge: Annotated[
        bool | None,
        typer.Option("--ogm-ge/--no-ogm-ge", help="AV: OGM-GE gradient modulation."),
        Key("balance.ogm_ge"),
    ] = None,
    ogm_alpha: Annotated[float | None, typer.Option(help="OGM-GE alpha."), Key("balance.alpha")] = None,
    ogm_start: Annotated[
        int | None, typer.Option(help="First epoch (0-based) of OGM-GE."), Key("balance.start_epoch")
    ] = None,
    ogm_end: Annotated[
        int | None, typer.Option(help="Last epoch (0-based) of OGM-GE."), Key("balance.end_epoch")
    ] = None,
    aux_weight: Annotated[
        float | None, typer.Option(help="AV: weight of the unimodal head losses."), Key("balance.aux_weight")
    ] = None,
    energy_weight: Annotated[
        float | None,
        typer.Option(help="Energy penalty λ: loss += λ·E/E_ref (E_ref: the first step's E)."),
        Key("energy.weight"),
    ] = None,
    energy_budget: Annotated[
        str | None,
        typer.Option(help="Energy budget per sample, e.g. 5uJ (pJ, nJ, uJ/µJ, mJ): Lagrangian."),
        Key("energy.budget"),
    ] = None,
    energy_model: Annotated[
        str | None,
        typer.Option(help="Profiler energy model pricing the estimate (h45_fp32_paper)."),
        Key("energy.model"),
    ] = None,
    energy_start_epoch: Annotated[
        int | None,
        typer.Option(help="First epoch (0-based) the energy enters the loss (a warm-up before it)."),
        Key("energy.start_epoch"),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs."), Key("optim.epochs")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", help="Global batch size."), Key("data.batch_size")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (AdamW)."), Key("optim.lr")] = None,
    min_lr: Annotated[
        float | None, typer.Option(help="Learning rate at the end of the cosine."), Key("optim.min_lr")
    ] = None,
    qat_bits: Annotated[
        int | None,
        typer.Option(
            help="Quantization-aware training with N-bit weights (2-16; with --resume-from to fine-tune)."
        ),
        Key("quant.bits"),
    ] = None,
    qat_per_channel: Annotated[
        bool | None,
        typer.Option(
            "--qat-per-channel/--qat-per-layer", help="QAT: one weight scale per channel or per layer."
        ),
        Key("quant.per_channel"),
    ] = None,
    resume_from: Annotated[
        str | None,
        typer.Option(help="Start from this checkpoint's weights (fine-tuning; a new run)."),
        Key("run.resume_from"),
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="AdamW weight decay (not on 1-D params)."), Key("optim.weight_decay")
    ] = None,
    warmup_epochs: Annotated[
        float | None, typer.Option(help="Linear warm-up epochs."), Key("optim.warmup_epochs")
    ] = None,
    label_smoothing: Annotated[
        float | None, typer.Option(help="Label smoothing of the train loss."), Key("optim.label_smoothing")
    ] = None,
    grad_clip: Annotated[
        float | None, typer.Option(help="Max gradient norm (0: off)."), Key("optim.grad_clip")
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option("--patience", "--patience-epochs", help="Early stopping patience in epochs (0: off)."),
        Key("run.patience"),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of init, data order and augmentation."), Key("run.seed")
    ] = None,
    amp: Annotated[str | None, typer.Option(help="auto, none, bf16 or fp16."), Key("run.amp")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda."), Key("run.device")] = None,
    workers: Annotated[
        int | None, typer.Option(help="DataLoader workers per process."), Key("data.workers")
    ] = None,
    augment: Annotated[
        bool | None,
        typer.Option("--augment/--no-augment", help="Train-time augmentation."),
        Key("data.augment"),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option("--out", "--output-dir", help="Parent folder of runs (run in OUT/NAME)."),
        Key("run.out"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Run directory name."), Key("run.name")] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(help="Also save last.pt every N steps (0: per epoch)."),
        Key("run.checkpoint_every"),
    ] = None,
    progress: Annotated[
        str | None, typer.Option(help="auto, bar, lines or none."), Key("run.progress")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="torch CPU threads per process."), Key("run.threads")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Any config key, KEY=VALUE (repeatable).")
    ] = None,
) -> None:
    """Train a model on a prepared cache; the best epoch is chosen on val, test is evaluated once."""
    from qkf_snn.hardware.profile.estimator import check_energy_model
    from qkf_snn.hardware.profile.term import energy_terms
    from qkf_snn.training.config import compose, parse_set
    from qkf_snn.training.loop import train as run_train
    from qkf_snn.units import parse_energy

    if energy_budget is not None:  # named as typed, before the recipe is composed
        parse_energy(energy_budget, "--energy-budget")
    if energy_model is not None:
        check_energy_model(energy_model, "--energy-model")
    given = overrides(train, locals())
    given.update(parse_set(set_ or []))
    cfg = compose(dataset, modality, recipe=config, overrides=given)
    terms = energy_terms(cfg)  # also checks energy.model, whatever set it (recipe, --set)
    run_train(cfg, resume=resume, overwrite=overwrite, terms=terms)  # diverged/interrupted: exit 1/3


def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="best.pt or last.pt of a run.", show_default=False)],
    data: Annotated[Path | None, typer.Option("--data", help="Prepared cache (default: the run's).")] = None,
    split: Annotated[str, typer.Option(help="val or test (or train).")] = "test",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Batch size.")] = 64,
    workers: Annotated[int, typer.Option(help="DataLoader workers.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the metrics as JSON.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Accuracy, macro-F1, per-class and per-modality accuracy of a checkpoint on one split."""
    from qkf_snn.io import atomic_write_json, check_destination

    if output is not None:  # before the evaluation (and its imports), not after it
        check_destination(output, "--output", "file")
    from qkf_snn.training.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        checkpoint, data, split, batch_size=batch_size, workers=workers, device=device
    )
    if output is not None:
        atomic_write_json(output, metrics)
    if as_json:
        typer.echo(json.dumps(metrics, indent=1))
        return
    _print_metrics(metrics)


def _print_metrics(m: dict[str, Any]) -> None:
    console = Console(soft_wrap=True)
    head = f"{m['checkpoint']} on {m['split']} ({m['n']} clips): acc {m['acc']:.2%}"
    head += f", macro-F1 {m['f1_macro']:.3f}"
    if "acc_audio" in m:
        head += f", audio head {m['acc_audio']:.2%}, video head {m['acc_video']:.2%}"
    console.print(head, highlight=False)
    table = Table()
    table.add_column("class")
    table.add_column("clips", justify="right")
    table.add_column("accuracy", justify="right")
    for name, acc, row in zip(m["class_names"], m["class_acc"], m["confusion"], strict=True):
        table.add_row(name, str(sum(row)), f"{acc:.1%}")
    console.print(table)
