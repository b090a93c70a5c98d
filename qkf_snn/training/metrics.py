"""Classification metrics with torchmetrics: accuracy, macro-F1, per-class accuracy (recall),
confusion matrix, mean loss, and per-modality accuracy of AV models.

All states are sums, so under DDP ``compute()`` gathers them from every rank (torchmetrics does it
when a process group exists) and each clip counts once if the eval sampler does not pad.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score


class ClassificationMetrics:
    """Accumulate over batches, then :meth:`compute` a plain dict (floats and lists)."""

    def __init__(
        self, num_classes: int, modalities: tuple[str, ...] = (), device: torch.device | str = "cpu"
    ):
        k = num_classes
        self.fused = MetricCollection(
            {
                "acc": MulticlassAccuracy(k, average="micro"),
                "f1_macro": MulticlassF1Score(k, average="macro"),
                "class_acc": MulticlassAccuracy(k, average="none"),
                "confusion": MulticlassConfusionMatrix(k),
            }
        ).to(device)
        self.per_modality = {m: MulticlassAccuracy(k, average="micro").to(device) for m in modalities}
        self.loss = MeanMetric().to(device)

    @torch.no_grad()
    def update(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor, loss: torch.Tensor) -> None:
        """``outputs``: ``forward_all`` of a batch; ``loss``: the batch's mean loss."""
        self.fused.update(outputs["logits"].float(), labels)
        for m, metric in self.per_modality.items():
            metric.update(outputs[m].float(), labels)
        self.loss.update(loss.detach().float(), weight=labels.numel())

    def compute(self) -> dict[str, Any]:
        fused = self.fused.compute()
        confusion = fused["confusion"].long()
        out: dict[str, Any] = {
            "loss": float(self.loss.compute()),
            "acc": float(fused["acc"]),
            "f1_macro": float(fused["f1_macro"]),
            "class_acc": [float(v) for v in fused["class_acc"]],
            "confusion": confusion.tolist(),
            "n": int(confusion.sum()),
        }
        for m, metric in self.per_modality.items():
            out[f"acc_{m}"] = float(metric.compute())
        return out
