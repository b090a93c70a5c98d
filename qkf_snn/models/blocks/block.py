"""One QKFormer block: x = x + attn(x); x = x + mlp(x).

Both branches end in a spiking neuron, so the residual stream carries small integers (0, 1, 2, ...);
every later layer reads that integer stream. No LayerNorm.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from qkf_snn.models.blocks.attention import QKAttention, SpikingSelfAttention
from qkf_snn.models.blocks.mlp import SpikingMLP
from qkf_snn.models.neurons import NeuronConfig

AttentionKind = Literal["qkta", "qkca", "ssa"]
ATTENTIONS: tuple[str, ...] = ("qkta", "qkca", "ssa")


def make_attention(kind: str, dim: int, heads: int, neuron: NeuronConfig) -> nn.Module:
    if kind == "qkta":
        return QKAttention(dim, heads, mode="token", neuron=neuron)
    if kind == "qkca":
        return QKAttention(dim, heads, mode="channel", neuron=neuron)
    if kind == "ssa":
        return SpikingSelfAttention(dim, heads, neuron=neuron)
    raise ValueError(f"unknown attention {kind!r}; choose one of {', '.join(ATTENTIONS)}")


class QKFormerBlock(nn.Module):
    def __init__(
        self, dim: int, heads: int, *, attention: AttentionKind, mlp_ratio: float, neuron: NeuronConfig
    ) -> None:
        super().__init__()
        self.attn = make_attention(attention, dim, heads, neuron)
        self.mlp = SpikingMLP(dim, int(dim * mlp_ratio), neuron=neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)
