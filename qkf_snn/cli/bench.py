"""`qkf bench lif|train|all`: neuron-backend speed benchmarks (scripts in the repo's benchmarks/).

Each command prints a Markdown table ready for docs/benchmarks.md and writes the full result (rows,
settings, device, versions, command) as JSON under ``--out``.
"""

from __future__ import annotations

import importlib
import json
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from qkf_snn.errors import UserError
from qkf_snn.io import atomic_write_bytes, check_destination

app = typer.Typer(help="Speed benchmarks; results go to docs/benchmarks.md.", no_args_is_help=True)

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
VARIANTS = ("snntorch", "ours", "spikingjelly")
TRAIN_VARIANTS = (*VARIANTS, "ceiling")

Device = Annotated[str, typer.Option(help="auto (CUDA if visible), cpu or cuda.")]
Out = Annotated[Path, typer.Option(help="Folder for the JSON results.")]
Repeats = Annotated[int, typer.Option(min=1, help="Interleaved timing rounds; the median is reported.")]
Threads = Annotated[int, typer.Option(min=1, help="torch.set_num_threads on CPU.")]
Variants = Annotated[
    str, typer.Option(help="Comma-separated subset of snntorch (a), ours (b), spikingjelly (c).")
]


def _load(name: str) -> ModuleType:
    """Import a benchmark script from benchmarks/ (they are not part of the installed package)."""
    if not (BENCH_DIR / f"{name}.py").is_file():
        raise UserError(
            f"benchmark script {BENCH_DIR / name}.py not found: `qkf bench` runs from a source checkout"
        )
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    return importlib.import_module(name)


def _variants(text: str, allowed: tuple[str, ...] = VARIANTS) -> list[str]:
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        raise UserError(f"--variants: unknown {unknown or text!r}; choose from {', '.join(allowed)}")
    return chosen


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise UserError(f"{option} must be comma-separated positive integers (got {text!r})")
    return values


def _write(result: dict[str, Any], out: Path, markdown: str) -> Path:
    path = out / f"{result['benchmark']}-{result['environment']['device_type']}.json"
    atomic_write_bytes(path, json.dumps(result, indent=2).encode())
    env = result["environment"]
    typer.echo(f"\n{env['device']}; {', '.join(f'{k} {v}' for k, v in env['versions'].items())}")
    typer.echo(f"command: {env['command']}\n")
    typer.echo(markdown)
    typer.echo(f"\nwrote {path}")
    return path


def _command() -> str:
    return "qkf " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@app.command("lif")
def lif(
    device: Device = "auto",
    time_steps: Annotated[str, typer.Option(help="Comma-separated T values.")] = "4,8,16",
    batch: Annotated[
        int | None, typer.Option(min=1, help="Samples of 64×32×32 neurons [8 CPU, 256 GPU].")
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="Input / spike dtype: auto (bf16 on CUDA, else fp32), float32, bfloat16.")
    ] = "auto",
    repeats: Repeats = 7,
    iters: Annotated[int, typer.Option(min=1, help="Steps per timing round.")] = 3,
    threads: Threads = 2,
    variants: Variants = ",".join(VARIANTS),
    out: Out = Path("runs/bench"),
) -> None:
    """One LIF layer, forward + backward: snnTorch loop vs our backend vs SpikingJelly."""
    check_destination(out, "--out", "dir")
    if dtype not in ("auto", "float32", "bfloat16"):
        raise UserError(f"--dtype must be auto, float32 or bfloat16 (got {dtype!r})")
    steps = _ints(time_steps, "--time-steps")
    bench = _load("bench_neurons")
    result = bench.bench_lif(
        device, steps, batch, dtype=dtype, repeats=repeats, iters=iters, threads=threads,
        variants=_variants(variants), command=_command(),
    )  # fmt: skip
    _write(result, out, bench.lif_markdown(result))


@app.command("train")
def train(
    device: Device = "auto",
    model: Annotated[
        str | None, typer.Option(help="Registered AV model [qkf_av_tiny CPU, qkf_av_small GPU].")
    ] = None,
    batch: Annotated[int | None, typer.Option(min=1, help="Batch size [8 CPU, 64 GPU].")] = None,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="bf16 autocast [on for CUDA].")] = None,
    repeats: Repeats = 5,
    iters: Annotated[int, typer.Option(min=1, help="Steps per timing round.")] = 2,
    threads: Threads = 2,
    variants: Annotated[
        str, typer.Option(help="Subset of snntorch, ours, spikingjelly, ceiling (no neuron dynamics).")
    ] = ",".join(TRAIN_VARIANTS),
    out: Out = Path("runs/bench"),
) -> None:
    """The AV QKFormer training step: snnTorch loop vs our backend vs SpikingJelly (vs no dynamics)."""
    check_destination(out, "--out", "dir")
    chosen = _variants(variants, TRAIN_VARIANTS)
    bench = _load("bench_train_step")
    result = bench.bench_train(
        device, model, batch, amp=amp, repeats=repeats, iters=iters, threads=threads, variants=chosen,
        command=_command(),
    )  # fmt: skip
    _write(result, out, bench.train_markdown(result))


@app.command("all")
def all_(device: Device = "auto", threads: Threads = 2, out: Out = Path("runs/bench")) -> None:
    """Both benchmarks with their default settings."""
    check_destination(out, "--out", "dir")
    lif(device=device, threads=threads, out=out)
    train(device=device, threads=threads, out=out)
