"""The hierarchical QKFormer: a stem, then stages of (downsampling embedding + blocks), then a head.

Input is batch-first: a static image ``[B, C, H, W]`` (repeated over ``time_steps``, as in the
official code) or a sequence ``[B, T, C, H, W]`` (video frames or spectrogram windows: each element
is one SNN time step). Internally everything is time-major ``[T, B, ...]``. The head reads the
integer residual stream: mean over tokens, Linear, mean over T.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn

from qkf_snn.errors import UserError
from qkf_snn.models.blocks import ATTENTIONS, STEMS, DownsampleEmbed, QKFormerBlock, StemEmbed
from qkf_snn.models.neurons import NeuronConfig
from qkf_snn.models.utils import init_head


@dataclass
class QKFormerConfig:
    """Sizes and options of one QKFormer. One entry per stage in ``dims``, ``depths``, ``heads`` and
    ``attention``; stage 0's embedding is the stem, later stages start with a ÷4 downsampling."""

    in_channels: int = 3
    num_classes: int = 10
    input_size: tuple[int, int] = (32, 32)  # H, W of one time step (for example inputs)
    dims: tuple[int, ...] = (96, 192, 384)
    depths: tuple[int, ...] = (1, 1, 2)
    heads: tuple[int, ...] = (8, 8, 8)
    attention: tuple[str, ...] = ("qkta", "qkta", "ssa")
    mlp_ratio: float = 4.0
    stem: str = "cifar"
    downsample_pool_first: bool = False  # ImageNet pools in the first conv, CIFAR/DVS in the second
    pool: str = "analog"  # "analog": max-pool BN outputs (official); "spike": max-pool spikes
    time_steps: int = 4
    neuron: NeuronConfig = field(default_factory=NeuronConfig)

    def __post_init__(self) -> None:
        if isinstance(self.neuron, dict):
            self.neuron = NeuronConfig.from_dict(self.neuron)
        for name in ("dims", "depths", "heads", "attention", "input_size"):
            value = getattr(self, name)
            setattr(self, name, tuple(value) if isinstance(value, list | tuple) else value)
        n = len(self.dims)
        if isinstance(self.heads, int):
            self.heads = (self.heads,) * n
        if isinstance(self.attention, str):
            self.attention = (self.attention,) * n
        for name in ("depths", "heads", "attention"):
            if len(getattr(self, name)) != n:
                raise UserError(f"{name} has {len(getattr(self, name))} entries but dims has {n} stages")
        for a in self.attention:
            if a not in ATTENTIONS:
                raise UserError(f"unknown attention {a!r}; choose one of {', '.join(ATTENTIONS)}")
        for d, h in zip(self.dims, self.heads, strict=True):
            if d % h:
                raise UserError(f"stage dim {d} is not divisible by {h} heads")
        if self.stem not in STEMS:
            raise UserError(f"unknown stem {self.stem!r}; choose one of {', '.join(STEMS)}")
        if self.pool not in ("analog", "spike"):
            raise UserError(f"pool must be 'analog' or 'spike', got {self.pool!r}")
        if self.time_steps < 1:
            raise UserError(f"time_steps must be >= 1, got {self.time_steps}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QKFormerConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"unknown model option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


class Stage(nn.Module):
    def __init__(self, embed: nn.Module, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.embed = embed
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return x


class QKFormer(nn.Module):
    """Hierarchical spiking transformer with Q-K attention, built from :class:`QKFormerConfig`."""

    def __init__(self, config: QKFormerConfig) -> None:
        super().__init__()
        self.config = c = config
        stages = []
        for i, dim in enumerate(c.dims):
            if i == 0:
                embed = StemEmbed(c.in_channels, dim, STEMS[c.stem], pool=c.pool, neuron=c.neuron)
            else:
                embed = DownsampleEmbed(
                    c.dims[i - 1], dim, pool_first=c.downsample_pool_first, pool=c.pool, neuron=c.neuron
                )
            blocks = [
                QKFormerBlock(
                    dim, c.heads[i], attention=c.attention[i], mlp_ratio=c.mlp_ratio, neuron=c.neuron
                )
                for _ in range(c.depths[i])
            ]
            stages.append(Stage(embed, blocks))
        self.stages = nn.ModuleList(stages)
        self.num_features = c.dims[-1]
        self.head = nn.Linear(c.dims[-1], c.num_classes) if c.num_classes > 0 else nn.Identity()
        if isinstance(self.head, nn.Linear):
            init_head(self.head)

    def time_major(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` → repeated ``[T, B, C, H, W]``; ``[B, T, C, H, W]`` → ``[T, B, C, H, W]``."""
        c = self.config
        if x.dim() == 4:
            return x.unsqueeze(0).expand(c.time_steps, *x.shape)
        if x.dim() == 5:
            return x.transpose(0, 1)
        raise ValueError(f"expected [B, C, H, W] or [B, T, C, H, W], got shape {tuple(x.shape)}")

    def forward_stream(self, x: torch.Tensor) -> torch.Tensor:
        """The residual stream after the last stage, ``[T, B, C, H, W]`` (small integers)."""
        x = self.time_major(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step features ``[T, B, C]``: the stream averaged over tokens."""
        return self.forward_stream(x).flatten(3).mean(3)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``[T, B, classes]`` (the head is linear, so their mean is the output)."""
        return self.head(self.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_steps(x).mean(0)

    def example_input(self, batch: int = 1, *, sequence: bool = False) -> torch.Tensor:
        """A random input of the configured shape (static, or a ``[B, T, ...]`` sequence)."""
        c = self.config
        shape = (c.in_channels, *c.input_size)
        return torch.rand(batch, c.time_steps, *shape) if sequence else torch.rand(batch, *shape)
