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
    "av_bal": "AV + OGM-GE (α 0.3) + aux losses 0.5 (recipe)",
    "av_aux": "AV + aux losses 0.5 only",
    "av_ogm": "AV + OGM-GE (α 0.3) only",
}


def load(folder: Path) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(folder.glob("*_s*/results.json")):
        match = re.fullmatch(r"(.+)_s(\d+)", path.parent.name)
        if not match:
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


def mean_sd(values: list[float]) -> str:
    values = [100 * v for v in values]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {sd:.1f}"


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


def plot(runs: dict[str, list[dict]], path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for cond in [c for c in LABELS if c in runs]:
        histories = [r["history"] for r in runs[cond]]
        n = min(len(h) for h in histories)
        epochs = list(range(1, n + 1))
        for ax, key in zip(axes, ("train_ce", "val_loss", "val_acc"), strict=True):
            series = [[h[i][key] * (100 if key == "val_acc" else 1) for i in range(n)] for h in histories]
            mean = [statistics.mean(col) for col in zip(*series, strict=True)]
            lo = [min(col) for col in zip(*series, strict=True)]
            hi = [max(col) for col in zip(*series, strict=True)]
            (line,) = ax.plot(epochs, mean, label=LABELS[cond])
            ax.fill_between(epochs, lo, hi, color=line.get_color(), alpha=0.15)
    titles = (
        "train CE, fused logits (label smoothing 0.1)",
        "validation CE, fused logits",
        "validation accuracy (%)",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[2].legend(fontsize=8)
    fig.suptitle("Synthetic AVE layout: mean over seeds, band = min–max")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    runs = load(args.folder)
    if not runs:
        raise SystemExit(f"no <condition>_s<seed>/results.json under {args.folder}")
    print(table(runs))
    if args.png:
        plot(runs, args.png)
        print(f"\ncurves: {args.png}")


if __name__ == "__main__":
    main()
