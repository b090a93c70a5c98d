"""The spiking MLP: Conv1×1 (bias) → BN → LIF → Conv1×1 (bias) → BN → LIF."""

from __future__ import annotations

import torch
from torch import nn

from qkf_snn.models.blocks.conv import ConvBNSpike
from qkf_snn.models.neurons import NeuronConfig


class SpikingMLP(nn.Module):
    def __init__(self, dim: int, hidden: int, *, neuron: NeuronConfig) -> None:
        super().__init__()
        self.fc1 = ConvBNSpike(dim, hidden, bias=True, neuron=neuron)
        self.fc2 = ConvBNSpike(hidden, dim, bias=True, neuron=neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))
