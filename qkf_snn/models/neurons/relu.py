"""``relu``: the ANN twin's unit. ``qkf train ... --neuron relu`` puts max(x, 0) in place of every
spiking neuron, so the same architecture trains as an ANN on the same input.

Time stays: the twin reads the same ``[T, B, ...]`` input as the SNN, each step through the same
layers (no state is carried between steps: a ReLU has no membrane), and the read-out averages the
steps' logits as it does for spikes. For a clip whose T steps are different windows (audio frames,
video frames) that is what "the same network on the same data" means; collapsing T would give the
twin other input. Its output is real-valued, so the profiler types the layers it feeds as real
(MAC) layers: every convention prices them as MACs over the T steps (``docs/energy_aware.md``).
NIR has no ReLU node: ``qkf export nir`` refuses it in one line (``hardware/nir/nodes.py``).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from qkf_snn.models.neurons.lif import MultiStepNeuron, register_neuron


@register_neuron
class ReLU(MultiStepNeuron):
    """max(x, 0) per step; reads no neuron setting (threshold, τ, surrogate do not apply)."""

    kind: ClassVar[str] = "relu"
    spiking: ClassVar[bool] = False

    def __init__(self, **kwargs) -> None:
        super().__init__(beta=0.0, **kwargs)

    def run(self, x: torch.Tensor, record_mem: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.dim() < 2:
            raise ValueError(f"{type(self).__name__} expects [T, B, ...], got shape {tuple(x.shape)}")
        y = torch.relu(x)
        return y, (y if record_mem else None)

    def extra_repr(self) -> str:
        return "kind=relu (ANN twin: max(x, 0) per step, no state)"
