"""Small model utilities shared by training, profiling and export."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Any]) -> nn.Module:
    """Replace every BatchNorm's running statistics by the exact mean/variance over ``batches``
    (cumulative average, momentum None), then return the model in eval mode. Used before
    evaluating a freshly built or freshly trained model, whose EMA statistics lag its weights."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for batch in batches:
        model(batch)
    for m, momentum in zip(bns, saved, strict=True):
        m.momentum = momentum
    return model.eval()


def init_head(head: nn.Linear) -> None:
    """A classification head's start: truncated-normal weights (std 0.02, as timm's ViTs), zero bias."""
    nn.init.trunc_normal_(head.weight, std=0.02)
    nn.init.zeros_(head.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
