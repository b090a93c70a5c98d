"""Conv → BN → (max-pool) → spiking neuron, run on the merged time-batch axis.

Tensors are ``[T, B, ...]``: convolution and BatchNorm see ``T·B`` samples (statistics shared over
time, as in the official code); only neurons loop over T.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from qkf_snn.models.neurons import NeuronConfig

PoolMode = Literal["analog", "spike"]


def merge_time(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply ``module`` to ``x [T, B, ...]`` with T and B merged, and split them again."""
    T, B = x.shape[:2]
    y = module(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])


class ConvBNSpike(nn.Module):
    """Conv(bias?) → BN → LIF, optionally with max-pool (3, 2, 1).

    ``pool="analog"`` pools the BN output before the neuron (the official QKFormer placement);
    ``pool="spike"`` pools the spikes after it (an OR over the window, expressible on neuromorphic
    hardware). ``dims=1`` gives the 1×1 Conv1d / BatchNorm1d token projections.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 1,
        stride: int = 1,
        bias: bool = False,
        pool: PoolMode | None = None,
        dims: Literal[1, 2] = 2,
        neuron: NeuronConfig | None = None,
        threshold: float | None = None,
    ) -> None:
        super().__init__()
        conv, bn = (nn.Conv1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d)
        self.conv = conv(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=bias)
        self.bn = bn(out_channels)
        if pool not in (None, "analog", "spike"):
            raise ValueError(f"pool must be None, 'analog' or 'spike', got {pool!r}")
        self.pool_mode = pool
        self.pool = nn.MaxPool2d(3, 2, 1) if pool else None
        neuron = neuron or NeuronConfig()
        self.lif = neuron.build(**({} if threshold is None else {"threshold": threshold}))
        self.qat = None  # a models.quant.QuantSpec under quantization-aware training (enable_qat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.qat is not None:  # BN folded (frozen) and the weights fake-quantized: models/quant.py
            from qkf_snn.models.quant import fake_quant_conv

            weight, bias = fake_quant_conv(self.conv, self.bn, self.qat)
            T, B = x.shape[:2]
            y = self.conv._conv_forward(x.flatten(0, 1), weight, bias)
            y = y.reshape(T, B, *y.shape[1:])
        else:
            y = merge_time(self.conv, x)
            y = merge_time(self.bn, y)
        if self.pool_mode == "analog":
            y = merge_time(self.pool, y)
        y = self.lif(y)
        if self.pool_mode == "spike":
            y = merge_time(self.pool, y)
        return y
