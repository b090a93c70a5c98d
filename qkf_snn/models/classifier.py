"""Classifiers over a batch dict, the one interface training, profiling and export share.

A batch is ``{"audio": [B, T, 1, F, W], "video": [B, T, 3, H, W], ...}`` (only the modalities a
model uses need to be present). ``forward(batch)`` returns logits ``[B, K]``; ``forward_steps``
returns per-time-step logits ``[T, B, K]`` whose mean over T is the output; ``forward_all`` returns
a dict with ``logits`` plus, for multimodal models, per-modality logits.
"""

from __future__ import annotations

import torch
from torch import nn

from qkf_snn.models.qkformer import QKFormer

Batch = dict[str, torch.Tensor]


class UniModalClassifier(nn.Module):
    """One QKFormer encoder (with its own head) reading one modality of the batch."""

    modalities: tuple[str, ...]

    def __init__(self, encoder: QKFormer, modality: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.modality = modality
        self.modalities = (modality,)

    def forward_steps(self, batch: Batch) -> torch.Tensor:
        return self.encoder.forward_steps(batch[self.modality])

    def forward_all(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits = self.forward_steps(batch).mean(0)
        return {"logits": logits, self.modality: logits}

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.forward_steps(batch).mean(0)

    def example_batch(self, batch: int = 1) -> Batch:
        return {self.modality: self.encoder.example_input(batch, sequence=True)}
