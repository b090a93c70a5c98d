"""Parameter-free operators of the attention blocks, as modules so that profilers and exporters
see them (with their inputs) through ordinary forward hooks instead of guessing at functional calls.
"""

from __future__ import annotations

import torch
from torch import nn


class Mul(nn.Module):
    """Elementwise product ``a * b`` (mask ⊙ K: for binary spikes an AND)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b


class MatMul(nn.Module):
    """Batched matrix product ``a @ b`` (SSA's Kᵀ·V and Q·(Kᵀ·V))."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b


class Sum(nn.Module):
    """Sum over one dimension, kept (Q summed over a head's channels or over tokens)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(self.dim, keepdim=True)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
