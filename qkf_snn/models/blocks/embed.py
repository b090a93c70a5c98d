"""Patch embeddings: the stem that turns inputs into the first token grid, and the downsampling
embeddings between stages. Each adds a 1×1 strided shortcut (spikes + spikes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from qkf_snn.models.blocks.conv import ConvBNSpike, PoolMode
from qkf_snn.models.neurons import NeuronConfig


@dataclass(frozen=True)
class StemSpec:
    """3×3 conv layers of a stem (width as a fraction of the stage-1 dim, or absolute when > 1
    is given as int), which of them max-pool, and which layer's spikes feed the shortcut."""

    widths: tuple[float | int, ...]
    pools: tuple[bool, ...]
    shortcut_from: int

    def channels(self, dim: int) -> list[int]:
        return [w if isinstance(w, int) else int(dim * w) for w in self.widths]


STEMS: dict[str, StemSpec] = {
    # CIFAR: no downsampling, 32×32 tokens.
    "cifar": StemSpec(widths=(0.5, 1.0), pools=(False, False), shortcut_from=0),
    # ImageNet: ÷4 (224 → 56 tokens per side).
    "imagenet": StemSpec(widths=(0.5, 1.0, 1.0), pools=(True, True, False), shortcut_from=0),
    # CIFAR10-DVS: fixed 16/32/64 channels, ÷8 (128 → 16).
    "dvs": StemSpec(widths=(16, 32, 64, 1.0), pools=(False, True, True, True), shortcut_from=1),
}


class StemEmbed(nn.Module):
    """Stage-1 patch embedding: a chain of Conv3×3-BN-(pool)-LIF plus a shortcut
    Conv1×1(stride = remaining downsampling)-BN-LIF from one of its layers, added at the end."""

    def __init__(
        self, in_channels: int, dim: int, spec: StemSpec, *, pool: PoolMode, neuron: NeuronConfig
    ) -> None:
        super().__init__()
        widths = spec.channels(dim)
        if widths[-1] != dim:
            raise ValueError(f"stem must end at the stage dim {dim}, got widths {widths}")
        self.shortcut_from = spec.shortcut_from
        chans = [in_channels, *widths]
        self.layers = nn.ModuleList(
            ConvBNSpike(
                chans[i], chans[i + 1], kernel_size=3, pool=pool if spec.pools[i] else None, neuron=neuron
            )
            for i in range(len(widths))
        )
        stride = 2 ** sum(spec.pools[spec.shortcut_from + 1 :])
        self.shortcut = ConvBNSpike(widths[spec.shortcut_from], dim, stride=stride, neuron=neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = None
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == self.shortcut_from:
                feat = x
        return x + self.shortcut(feat)


class DownsampleEmbed(nn.Module):
    """Stage-2/3 patch embedding D_in → D, tokens ÷ 4: two Conv3×3-BN-LIF (one of them max-pools:
    the first in the ImageNet model, the second in CIFAR/DVS) plus the shortcut
    Conv1×1(stride 2)-BN-LIF of the block input (the integer residual stream)."""

    def __init__(
        self, in_dim: int, dim: int, *, pool_first: bool, pool: PoolMode, neuron: NeuronConfig
    ) -> None:
        super().__init__()
        self.conv1 = ConvBNSpike(in_dim, dim, kernel_size=3, pool=pool if pool_first else None, neuron=neuron)
        self.conv2 = ConvBNSpike(dim, dim, kernel_size=3, pool=None if pool_first else pool, neuron=neuron)
        self.shortcut = ConvBNSpike(in_dim, dim, stride=2, neuron=neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + self.shortcut(x)
