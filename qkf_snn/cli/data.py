"""`qkf data prepare|info|synth`: thin wrappers over ``qkf_snn.datasets``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
import yaml

from qkf_snn.datasets.registry import DATASETS

app = typer.Typer(help="Prepare, inspect and synthesise datasets.", no_args_is_help=True)

DatasetArg = Annotated[str, typer.Argument(help=", ".join(DATASETS), show_default=False)]
# Per-dataset help, from the registry: adding a dataset adds its defaults and splits here.
CLIP_SECONDS_HELP = ", ".join(f"{n} {s.clip_seconds:g}" for n, s in DATASETS.items())
SPLIT_HELP = "; ".join(f"{n}: {'|'.join(s.splits)}" for n, s in DATASETS.items())
SHOWN_SKIPS = 20


@app.command()
def prepare(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Option("--out", help="Cache folder to write (new, empty, or a cache).")],
    raw: Annotated[
        Path | None,
        typer.Option("--raw", help="Raw dataset root, as downloaded (folder: optional with --manifest)."),
    ] = None,
    workers: Annotated[int, typer.Option(help="Decoding processes.")] = 1,
    time_steps: Annotated[int, typer.Option(help="T: time steps per clip.")] = 4,
    image_size: Annotated[int, typer.Option(help="Frame side after centre crop.")] = 64,
    n_mels: Annotated[int, typer.Option(help="Mel bands.")] = 64,
    audio_width: Annotated[int, typer.Option(help="Log-mel columns per time step.")] = 64,
    sample_rate: Annotated[int, typer.Option(help="Audio is resampled to this rate.")] = 16000,
    clip_seconds: Annotated[
        float | None, typer.Option(help=f"Fixed span per clip (default: {CLIP_SECONDS_HELP}).")
    ] = None,
    modalities: Annotated[str, typer.Option(help="audio,video or one of them.")] = "audio,video",
    split: Annotated[
        str | None,
        typer.Option(help=f"Split name ({SPLIT_HELP}; crema also: a folder with train.csv/test.csv)."),
    ] = None,
    split_seed: Annotated[int, typer.Option(help="Seed of the generated splits.")] = 0,
    event_crop: Annotated[bool, typer.Option(help="ave: cut clips to the annotated event.")] = False,
    manifest: Annotated[
        Path | None,
        typer.Option(help="folder: CSV of clips (label, video/audio/image; split, group, start, end)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Decode every clip once into a memory-mappable cache (resumable; reruns reuse finished clips)."""
    from qkf_snn.datasets import prepare as run_prepare

    report = run_prepare(
        dataset,
        raw,
        out,
        workers=workers,
        time_steps=time_steps,
        image_size=image_size,
        n_mels=n_mels,
        audio_width=audio_width,
        sample_rate=sample_rate,
        clip_seconds=clip_seconds,
        modalities=tuple(m.strip() for m in modalities.split(",") if m.strip()),
        split=split,
        split_seed=split_seed,
        event_crop=event_crop,
        manifest=manifest,
        progress=progress,
    )
    per_split = ", ".join(f"{s} {report.splits.get(s, 0)}" for s in ("train", "val", "test"))
    typer.echo(
        f"{report.dataset}: found {report.found}, prepared {report.prepared}, skipped {report.skipped} "
        f"({per_split}; split {report.split}) in {report.seconds:.1f} s "
        f"[decoded {report.decoded}, reused {report.reused}]"
    )
    for note in report.notes:
        typer.echo(f"note: {note}")
    for skip in report.skipped_clips[:SHOWN_SKIPS]:
        typer.echo(f"skipped {skip.path}: {skip.reason}")
    if report.skipped > SHOWN_SKIPS:
        typer.echo(
            f"... and {report.skipped - SHOWN_SKIPS} more (all reasons in {Path(out) / 'report.json'})"
        )


@app.command()
def info(
    cache: Annotated[Path, typer.Argument(help="A prepared cache folder.", show_default=False)],
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Also read every byte and compare it with the checksums prepare recorded (exit 1 if any "
            "differs).",
        ),
    ] = False,
) -> None:
    """Counts per split and class of a prepared cache (its index and array headers are checked)."""
    from rich.console import Console
    from rich.table import Table

    from qkf_snn.datasets import CacheError, cache_info, verify_cache
    from qkf_snn.datasets.cache import REPAIR

    try:
        summary = cache_info(cache)
    except CacheError as err:
        _fail(err.lines(), 2)
    p = summary.params
    table = Table(title=f"{summary.dataset} ({cache}), split {summary.split_name}")
    table.add_column("class")
    for split in ("train", "val", "test", "total"):
        table.add_column(split, justify="right")
    for name in summary.class_names:
        row = [summary.counts[s][name] for s in ("train", "val", "test")]
        table.add_row(name, *map(str, row), str(sum(row)))
    totals = [sum(summary.counts[s].values()) for s in ("train", "val", "test")]
    table.add_row("total", *map(str, totals), str(sum(totals)))
    console = Console(width=120)
    console.print(table)
    console.print(
        f"T={p['time_steps']}, audio 1x{p['n_mels']}x{p['audio_width']} @ {p['sample_rate']} Hz, "
        f"video 3x{p['image_size']}x{p['image_size']}, {p['clip_seconds']:g} s per clip, "
        f"modalities {', '.join(summary.modalities)}; {summary.skipped} clips could not be decoded"
    )
    typer.echo(
        f"cache checksum sha256:{summary.checksum}"
        if summary.checksum
        else "no checksums (prepared before qkf recorded them; `qkf data prepare` with the same arguments "
        "adds them without decoding again)"
    )
    if not verify:
        return
    result = verify_cache(cache)
    if not result.checked:
        _fail([f"cache {cache}: cannot verify: it holds no checksums (prepared before qkf recorded them); "
               "`qkf data prepare` with the same arguments adds them without decoding again"], 1)  # fmt: skip
    if result.problems:
        _fail([f"cache {cache}: {problem}; {REPAIR}" for problem in result.problems], 1)
    typer.echo(
        f"verified: every byte of {summary.total} clips in {len(summary.modalities)} array file(s) and "
        f"the index matches the checksums recorded by prepare (cache checksum sha256:{result.cache_digest})"
    )


def _fail(lines: list[str], status: int) -> NoReturn:
    """One line per problem on stderr, then the exit status (1: a failed check, 2: unusable input)."""
    for line in lines:
        typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
    # SystemExit rather than typer.Exit: it keeps its status however the root app is run.
    raise SystemExit(status)


@app.command()
def synth(
    dataset: DatasetArg,
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write (new, empty, or an earlier synthetic set).")
    ],
    clips: Annotated[int, typer.Option(help="Number of clips.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same bytes.")] = 0,
    knob: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a knob, KEY=VALUE (repeatable), e.g. --set video_noise=0.3."),
    ] = None,
) -> None:
    """Write a synthetic set in the dataset's real raw layout (knobs: see `synthesize`'s docstring)."""
    from qkf_snn.datasets import synthesize

    written = synthesize(dataset, out, clips=clips, seed=seed, **parse_knobs(knob or []))
    hint = yaml.safe_load((written / "synth.json").read_text())["prepare_hint"]
    typer.echo(f"wrote {clips} synthetic {dataset} clips to {written}")
    typer.echo(
        f"next: qkf data prepare {dataset} --raw {written} --out {written}-cache "
        f"--clip-seconds {hint['clip_seconds']:g}"
    )


def parse_knobs(items: list[str]) -> dict[str, object]:
    """``["audio_noise=0.5", "classes=[Bark, Cat]"]`` -> typed values (YAML scalars and lists)."""
    from qkf_snn.training.config import parse_set  # the one KEY=VALUE parser; training's import is heavier

    return parse_set(items, example="audio_noise=0.5")
