"""Aggregate the modality-balancing runs (``<condition>_s<seed>`` folders): a Markdown table of
mean ± sample standard deviation over seeds, and a PNG of the loss and accuracy curves.

    python jobs/balancing_report.py /tmp/qkf-balancing/runs --png docs/modality_balancing.png

Protocol (what every number means): the best epoch of each run is chosen on validation accuracy;
test accuracy is that checkpoint's, evaluated once at the end of the run.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "audio": "audio only",
    "video": "video only",
    "av_plain": "AV, no balancing",
    "av_bal": "AV + OGM-GE (α 0.3, epochs 1–10) + aux 0.5 (recipe)",
    "av_aux": "AV + aux losses 0.5 only",
    "av_ogm": "AV + OGM-GE (α 0.3, epochs 1–51) only",
    "av_bal_long": "AV + OGM-GE (α 0.3, epochs 1–51) + aux 0.5",
    "av_bal_a01": "AV + OGM-GE (α 0.1, epochs 1–51) + aux 0.5",
}


def load(folder: Path, seeds: set[int] | None = None) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(folder.glob("*_s*/results.json")):
        match = re.fullmatch(r"(.+)_s(\d+)", path.parent.name)
        if not match or (seeds is not None and int(match.group(2)) not in seeds):
            continue
        results = json.loads(path.read_text())
        history = [json.loads(line) for line in (path.parent / "metrics.jsonl").read_text().splitlines()]
        steps = [json.loads(line) for line in (path.parent / "steps.jsonl").read_text().splitlines()]
        for record in history:
            if "train_ce" not in record:  # older logs: the mean of the step records of that epoch
                ce = [s["ce"] for s in steps if s["epoch"] == record["epoch"]]
                record["train_ce"] = statistics.mean(ce) if ce else float("nan")
        runs[match.group(1)].append({"seed": int(match.group(2)), "results": results, "history": history})
    return runs


def sample_sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def mean_sd(values: list[float]) -> str:
    values = [100 * v for v in values]
    return f"{statistics.mean(values):.1f} ± {sample_sd(values):.1f}"


def table(runs: dict[str, list[dict]]) -> str:
    lines = [
        "| condition | seeds | test acc (%) | val acc (%) | test macro-F1 | test audio head (%) | "
        "test video head (%) | best epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cond in [c for c in LABELS if c in runs] + sorted(set(runs) - set(LABELS)):
        rs = [r["results"] for r in runs[cond]]
        heads = [
            mean_sd([r["test"][k] for r in rs]) if all(k in r["test"] for r in rs) else "–"
            for k in ("acc_audio", "acc_video")
        ]
        f1 = [r["test"]["f1_macro"] for r in rs]
        epochs = ", ".join(str(r["best_epoch"] + 1) for r in rs)
        lines.append(
            f"| {LABELS.get(cond, cond)} | {len(rs)} | {mean_sd([r['test']['acc'] for r in rs])} | "
            f"{mean_sd([r['val']['acc'] for r in rs])} | {statistics.mean(f1):.3f} | "
            f"{heads[0]} | {heads[1]} | {epochs} |"
        )
    return "\n".join(lines)


def _band(ax, histories: list[list[dict]], key: str, label: str, color: str, style: str = "-") -> None:
    """Mean over seeds as a line, min–max as a band (percent for accuracies)."""
    n = min(len(h) for h in histories)
    scale = 100 if "acc" in key else 1
    series = [[h[i][key] * scale for i in range(n)] for h in histories]
    cols = list(zip(*series, strict=True))
    epochs = list(range(1, n + 1))
    ax.plot(epochs, [statistics.mean(c) for c in cols], style, color=color, label=label)
    lo, hi = [min(c) for c in cols], [max(c) for c in cols]
    ax.fill_between(epochs, lo, hi, color=color, alpha=0.15)


def paired(runs: dict[str, list[dict]], base: str, other: str) -> str:
    """Test accuracy of ``other`` minus ``base``, seed by seed, over the seeds both have."""
    acc = {c: {r["seed"]: 100 * r["results"]["test"]["acc"] for r in runs.get(c, [])} for c in (base, other)}
    seeds = sorted(set(acc[base]) & set(acc[other]))
    if not seeds:
        return f"{other} − {base}: no seed has both"
    diffs = [acc[other][s] - acc[base][s] for s in seeds]
    per_seed = ", ".join(f"s{s} {d:+.2f}" for s, d in zip(seeds, diffs, strict=True))
    wins = sum(d > 0 for d in diffs)
    return (
        f"{LABELS.get(other, other)} − {LABELS.get(base, base)} (test acc, points): "
        f"{statistics.mean(diffs):+.2f} ± {sample_sd(diffs):.2f} over {len(seeds)} seeds, "
        f"better in {wins} ({per_seed})"
    )


def plot(runs: dict[str, list[dict]], path: Path) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    for i, cond in enumerate(c for c in LABELS if c in runs):
        histories = [r["history"] for r in runs[cond]]
        color = f"C{i}"  # one colour per condition in every panel
        for ax, key in zip(axes[:3], ("train_ce", "val_loss", "val_acc"), strict=True):
            _band(ax, histories, key, LABELS[cond], color)
        if all("val_acc_video" in h[0] for h in histories):
            # the AV model's video head: a linear probe on detached features when aux_weight is 0
            _band(axes[3], histories, "val_acc_video", LABELS[cond], color)
        elif cond == "video":
            _band(axes[3], histories, "val_acc", "video only (reference)", color, "--")
    titles = (
        "train CE, fused logits (label smoothing 0.1)",
        "validation CE, fused logits",
        "validation accuracy (%)",
        "validation accuracy of the video head (%)",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[2].legend(fontsize=8)
    axes[3].legend(fontsize=8)
    fig.suptitle("Synthetic AVE layout: mean over seeds, band = min–max")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="only these seeds")
    parser.add_argument(
        "--paired", nargs=2, action="append", default=[], metavar=("BASE", "OTHER"),
        help="seed-by-seed test accuracy difference OTHER − BASE (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    runs = load(args.folder, set(args.seeds) if args.seeds else None)
    if not runs:
        raise SystemExit(f"no <condition>_s<seed>/results.json under {args.folder}")
    print(table(runs))
    for base, other in args.paired:
        print("\n" + paired(runs, base, other))
    if args.png:
        plot(runs, args.png)
        print(f"\ncurves: {args.png}")


if __name__ == "__main__":
    main()
