"""Accuracy vs weight bits on the demo's audio-visual model (docs/deployment.md, "Integer weights").

Protocol: the data and model of `qkf demo` — a synthetic CREMA-D-layout set (`--clips`, default the
demo's 240; above 576 clips the generator gets one actor per 60 clips, up to 576 it is the demo's
8 actors), synthesized and split with the run's seed (stratified 80/10/10 train/val/test), prepared
at 32×32 video / 32 mel × 32 frames audio, T = 4; the deployable `qkf_av_tiny_deploy` trained with
the demo recipe (configs/demo/crema_av.yaml: 6 epochs, concat fusion, deterministic CPU kernels, one
thread), checkpoint chosen on validation accuracy. Then, on the val and test splits (no augmentation):

- float: the checkpoint as trained (float32);
- PTQ: `quantize_model(model, QuantSpec(bits, per_channel))` — BN folded, symmetric integers with
  power-of-two scales, exactly what `qkf export nir --weight-bits N` writes — at 8, 6 and 4 bits,
  per output channel and per layer;
- QAT: `qkf train --qat-bits 4 --resume-from <float best.pt>` for `--qat-epochs` epochs (default 3,
  lr 5e-4, no warm-up, otherwise the demo recipe), checkpoint chosen on validation accuracy, evaluated
  as its own forward pass (= its 4-bit export).

Usage: ``python benchmarks/quant_accuracy.py --out runs/quant_bench [--clips 240] [--seeds 0 1]
[--qat-epochs 3]``. Each step is skipped when its result is on disk (rerun to finish an interrupted
run); OUT/bench.json records the clip count, and an OUT made with another count is refused. Prints one
Markdown table (accuracy in %, one row per seed and setting) and writes it with the raw numbers to
OUT/quant_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from qkf_snn.io import atomic_write_json
from qkf_snn.models.quant import QuantSpec, quantize_model

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "demo" / "crema_av.yaml"
CLIPS, TIME_STEPS, SIZE = 240, 4, 32  # CLIPS: the demo's set, the default of --clips
PTQ = [(bits, pc) for bits in (8, 6, 4) for pc in (True, False)]


def prepare_data(out: Path, seed: int, clips: int) -> Path:
    from qkf_snn.datasets import prepare, synthesize

    raw, cache = out / f"raw_s{seed}", out / f"cache_s{seed}"
    if not (cache / "index.json").is_file():
        # The generator holds at most actors x 12 sentences per emotion: above the demo's 8 actors'
        # 576 clips, add actors (at most 10 clips per actor and emotion); up to 576 it is the demo's set.
        knobs = {"actors": -(-clips // 60)} if clips > 576 else {}
        synthesize("crema", raw, clips=clips, seed=seed, **knobs)
        hint = json.loads((raw / "synth.json").read_text()).get("prepare_hint", {})
        sizes = {"time_steps": TIME_STEPS, "image_size": SIZE, "n_mels": SIZE, "audio_width": SIZE}
        prepare("crema", raw, cache, workers=1, clip_seconds=hint.get("clip_seconds"), split_seed=seed,
                progress=False, **sizes)  # fmt: skip
    return cache


def config(out: Path, cache: Path, seed: int, name: str, **extra):
    from qkf_snn.training import compose

    overrides = {
        "data.dir": str(cache),
        "run.out": str(out / "runs"),
        "run.name": name,
        "run.seed": seed,
        "run.progress": "none",
        "model.name": "qkf_av_tiny_deploy",
        **extra,
    }
    return compose("crema", "av", recipe=RECIPE, overrides=overrides)


def trained(cfg) -> Path:
    from qkf_snn.training.loop import train

    best = cfg.run_dir / "best.pt"
    if not (cfg.run_dir / "results.json").is_file():
        train(
            cfg, resume=(cfg.run_dir / "last.pt").is_file(), overwrite=not (cfg.run_dir / "last.pt").is_file()
        )
    return best


@torch.no_grad()
def accuracy(model, cfg, split: str) -> float:
    from qkf_snn.training.data import build_dataset, make_loader
    from qkf_snn.training.loop import evaluate

    dataset = build_dataset(cfg.to_dict(), cfg.data.dir, split)
    loader = make_loader(dataset, batch_size=64, train=False, seed=0, workers=0)
    metrics = evaluate(model, loader, len(dataset.class_names), model.modalities, torch.device("cpu"))
    return 100.0 * metrics["acc"]


def run_seed(out: Path, seed: int, qat_epochs: int, clips: int) -> list[dict]:
    from qkf_snn.training.checkpoint import load_model

    cache = prepare_data(out, seed, clips)
    base = config(out, cache, seed, f"av_s{seed}")
    best = trained(base)
    model = load_model(best).model
    rows = [{"seed": seed, "setting": "float32", "bits": 32, "granularity": "-"}]
    models = [model]
    for bits, pc in PTQ:
        spec = QuantSpec(bits, pc)
        rows.append({"seed": seed, "setting": "PTQ", "bits": bits, "granularity": spec.granularity})
        models.append(quantize_model(model, spec))
    qat_cfg = config(out, cache, seed, f"av_s{seed}_qat4", **{
        "quant.bits": 4, "run.resume_from": str(best), "optim.epochs": qat_epochs, "optim.lr": 5e-4,
        "optim.warmup_epochs": 0})  # fmt: skip
    qat = load_model(trained(qat_cfg)).model  # its forward is the 4-bit quantized one
    rows.append(
        {"seed": seed, "setting": f"QAT ({qat_epochs} epochs)", "bits": 4, "granularity": "per-channel"}
    )
    models.append(qat)
    for row, m in zip(rows, models, strict=True):
        row["val"], row["test"] = accuracy(m, base, "val"), accuracy(m, base, "test")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quant_bench"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--qat-epochs", type=int, default=3)
    parser.add_argument("--clips", type=int, default=CLIPS, help="clips synthesized (the demo's: 240)")
    args = parser.parse_args()
    if args.clips < 60:
        parser.exit(2, f"--clips: {args.clips} is too few (at least 60: 10 val and 10 test clips)\n")
    marker = args.out / "bench.json"
    held = json.loads(marker.read_text()).get("clips") if marker.is_file() else args.clips
    if held != args.clips:
        parser.exit(2, f"--out: {args.out} holds {held} clips, not {args.clips} (use another --out)\n")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(marker, {"clips": args.clips})
    torch.set_num_threads(1)
    rows = [r for seed in args.seeds for r in run_seed(args.out, seed, args.qat_epochs, args.clips)]
    table = format_table(rows)
    print(table)
    atomic_write_json(args.out / "quant_accuracy.json", {"clips": args.clips, "rows": rows, "table": table})


def format_table(rows: list[dict]) -> str:
    """Per-seed rows with the test change vs that seed's float model, then the mean over seeds."""
    float_test = {r["seed"]: r["test"] for r in rows if r["setting"] == "float32"}
    head = "| seed | setting | weight bits | scales | val acc (%) | test acc (%) | test Δ vs float (points) |"
    lines = [head, "|---|---|---:|---|---:|---:|---:|"]
    means: dict[tuple, list[dict]] = {}
    for r in rows:
        delta = r["test"] - float_test[r["seed"]]
        cells = (r["seed"], r["setting"], r["bits"], r["granularity"], f"{r['val']:.2f}", f"{r['test']:.2f}",
                 f"{delta:+.2f}")  # fmt: skip
        lines.append("| " + " | ".join(map(str, cells)) + " |")
        means.setdefault((r["setting"], r["bits"], r["granularity"]), []).append({**r, "delta": delta})
    seeds = len(float_test)
    if seeds > 1:
        for key, group in means.items():
            avg = [sum(g[k] for g in group) / len(group) for k in ("val", "test", "delta")]
            cells = (f"mean of {seeds}", *key, f"{avg[0]:.2f}", f"{avg[1]:.2f}", f"{avg[2]:+.2f}")
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
