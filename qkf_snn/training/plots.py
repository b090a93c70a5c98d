"""PNG plots of a run: learning curves and a confusion matrix (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from qkf_snn.io import atomic_savefig  # noqa: E402


def plot_curves(
    history: Sequence[dict[str, Any]], path: Path, title: str = "", extra: Sequence[str] = ()
) -> None:
    """Loss (train objective, validation CE), accuracy (train, validation, per modality), lr; and, given
    ``extra`` keys of the records (the loss terms' epoch scalars), a fourth panel with those."""
    if not history:
        return
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 4 if extra else 3, figsize=(17 if extra else 13, 3.6))
    ax = axes[0]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train (objective)")
    ax.plot(epochs, [h["val_loss"] for h in history], label="val (CE)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    ax = axes[1]
    ax.plot(epochs, [100 * h["train_acc"] for h in history], label="train")
    ax.plot(epochs, [100 * h["val_acc"] for h in history], label="val", linewidth=2)
    for key, style in (("val_acc_audio", ":"), ("val_acc_video", "--")):
        if key in history[0]:
            ax.plot(epochs, [100 * h[key] for h in history], style, label=key.replace("_acc_", " "))
    best = [h["epoch"] for h in history if h.get("best")]
    if best:
        ax.axvline(best[-1], color="grey", linewidth=0.8, label="best (val)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.plot(epochs, [h["lr"] for h in history])
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate (end of epoch)")
    if extra:
        ax = axes[3]
        for key in extra:
            ax.plot(epochs, [h.get(key, float("nan")) for h in history], label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss terms")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def plot_confusion(
    confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: Path, title: str
) -> None:
    """Counts with rows = true class, columns = predicted class."""
    k = len(class_names)
    size = max(4.0, 0.35 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(k), [n[:14] for n in class_names], rotation=90, fontsize=7)
    ax.set_yticks(range(k), [n[:14] for n in class_names], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        peak = max(max(row) for row in confusion) or 1
        for i, row in enumerate(confusion):
            for j, v in enumerate(row):
                if v:
                    color = "white" if v > peak / 2 else "black"
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color=color)
    ax.set_title(title)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
