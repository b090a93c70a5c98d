"""Spiking attention: Q-K token attention (QKTA), Q-K channel attention (QKCA) and Spikformer's
spiking self-attention (SSA). Input and output ``[T, B, C, H, W]``; tokens N = H·W.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from qkf_snn.models.blocks.conv import ConvBNSpike
from qkf_snn.models.blocks.ops import MatMul, Mul, Sum
from qkf_snn.models.neurons import NeuronConfig

ATTENTION_THRESHOLD = 0.5  # the official attention neuron fires at H >= 0.5


class QKAttention(nn.Module):
    """Q-K attention (Zhou et al., NeurIPS 2024): Q and K are spikes; no V, no scale.

    ``mode="token"`` (QKTA): per head, Q is summed over the head's channels, giving an integer per
    token; the attention neuron turns it into a binary token mask A_t [T, B, h, 1, N], broadcast over
    the head's channels: X' = A_t ⊙ K.
    ``mode="channel"`` (QKCA): Q is summed over tokens, giving a per-channel mask A_c [T, B, C, 1]:
    X' = A_c ⊙ K. Then Conv1d 1×1 (with bias) → BN → LIF.
    """

    def __init__(
        self, dim: int, heads: int, *, mode: Literal["token", "channel"], neuron: NeuronConfig
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        if mode not in ("token", "channel"):
            raise ValueError(f"mode must be 'token' or 'channel', got {mode!r}")
        self.dim, self.heads, self.mode = dim, heads, mode
        self.q = ConvBNSpike(dim, dim, dims=1, neuron=neuron)
        self.k = ConvBNSpike(dim, dim, dims=1, neuron=neuron)
        # token mode: Q as [T, B, h, d, N], sum over d (dim 3); channel mode: Q as [T, B, C, N], sum over N.
        self.q_sum = Sum(3)
        self.attn_lif = neuron.build(threshold=ATTENTION_THRESHOLD)
        self.mask = Mul()
        self.proj = ConvBNSpike(dim, dim, dims=1, bias=True, neuron=neuron)

    def attention_mask(self, q: torch.Tensor) -> torch.Tensor:
        """Binary mask from Q spikes ``[T, B, C, N]``: ``[T, B, h, 1, N]`` (token) or ``[T, B, C, 1]``."""
        T, B, C, N = q.shape
        if self.mode == "token":
            q = q.reshape(T, B, self.heads, C // self.heads, N)
        return self.attn_lif(self.q_sum(q))

    def apply_mask(self, mask: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``mask ⊙ K`` for K ``[T, B, C, N]``, returned as ``[T, B, C, N]``."""
        T, B, C, N = k.shape
        if self.mode == "token":
            return self.mask(mask, k.reshape(T, B, self.heads, C // self.heads, N)).reshape(T, B, C, N)
        return self.mask(mask, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = x.flatten(3)
        q, k = self.q(x), self.k(x)
        out = self.apply_mask(self.attention_mask(q), k)
        return self.proj(out).reshape(T, B, C, H, W)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, heads={self.heads}"


class SpikingSelfAttention(nn.Module):
    """Spikformer SSA as QKFormer uses it: per head Q·(Kᵀ·V)·0.125 (linear in tokens), the attention
    neuron (θ = 0.5), then Conv1d (bias) → BN → LIF.

    Unlike the official code, the final neuron runs over [T, B, ...], so no membrane state passes
    between the samples of a batch (official issue #14).
    """

    def __init__(self, dim: int, heads: int, *, neuron: NeuronConfig, scale: float = 0.125) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.dim, self.heads, self.scale = dim, heads, scale
        self.q = ConvBNSpike(dim, dim, dims=1, neuron=neuron)
        self.k = ConvBNSpike(dim, dim, dims=1, neuron=neuron)
        self.v = ConvBNSpike(dim, dim, dims=1, neuron=neuron)
        self.kv = MatMul()
        self.qkv = MatMul()
        self.attn_lif = neuron.build(threshold=ATTENTION_THRESHOLD)
        self.proj = ConvBNSpike(dim, dim, dims=1, bias=True, neuron=neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = x.flatten(3)
        N, h = H * W, self.heads

        def heads(t: torch.Tensor) -> torch.Tensor:  # [T, B, C, N] -> [T, B, h, N, d]
            return t.reshape(T, B, h, C // h, N).transpose(-1, -2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        out = self.qkv(q, self.kv(k.transpose(-2, -1), v)) * self.scale  # [T, B, h, N, d]
        out = out.transpose(-1, -2).reshape(T, B, C, N)
        out = self.attn_lif(out)
        return self.proj(out).reshape(T, B, C, H, W)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, scale={self.scale}"
