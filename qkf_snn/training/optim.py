"""The optimiser and its schedule: AdamW with per-encoder parameter groups, linear warm-up + cosine."""

from __future__ import annotations

import math

import torch
from torch import nn

from qkf_snn.training.config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on 1-D parameters (biases, BatchNorm, PLIF time constants). Groups are
    tagged with the encoder they belong to (``"modality"``), so OGM-GE can scale one encoder's step."""
    encoders = {
        m: getattr(model, m) for m in ("audio", "video") if isinstance(getattr(model, m, None), nn.Module)
    }
    owner = {id(p): m for m, encoder in encoders.items() for p in encoder.parameters()}
    groups = []
    for modality in (*encoders, None):
        params = [p for p in model.parameters() if p.requires_grad and owner.get(id(p)) == modality]
        for decay in (True, False):
            chosen = [p for p in params if (p.dim() >= 2) == decay]
            if chosen:
                wd = cfg.optim.weight_decay if decay else 0.0
                groups.append({"params": chosen, "weight_decay": wd, "modality": modality or "shared"})
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))


class WarmupCosine:
    """lr factor per optimiser step: linear warm-up to 1, then cosine down to min_lr / lr."""

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float) -> None:
        self.warmup_steps, self.total_steps, self.min_ratio = warmup_steps, total_steps, min_ratio

    @classmethod
    def of(cls, cfg: TrainConfig, steps_per_epoch: int) -> WarmupCosine:
        total = max(1, cfg.optim.epochs * steps_per_epoch)
        warmup = min(total, round(cfg.optim.warmup_epochs * steps_per_epoch))
        return cls(warmup, total, min(1.0, cfg.optim.min_lr / cfg.optim.lr))

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
