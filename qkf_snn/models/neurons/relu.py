"""``relu``: the ANN twin's unit. ``qkf train ... --neuron relu`` puts a ReLU in place of every
spiking neuron, so the same architecture trains as an ANN on the same input.

The ReLU is clipped at 1 (min(max(x, 0), 1), "ReLU1", the range of a spike and the ANN counterpart
used in ANN-to-SNN conversion). Unclipped, the twin is not usable: SSA's Q·(Kᵀ·V) is cubic in its
inputs, so in eval mode (BN running statistics) a small mismatch grows block after block, and the
crema recipe's ``qkf_av_small`` / ``qkf_audio_small`` twins gave a NaN validation loss after one
epoch (measured; clipped: finite, 1.85). Spikes are bounded by construction; the clip gives the
twin the same bound and nothing else.

Time stays: the twin reads the same ``[T, B, ...]`` input as the SNN, each step through the same
layers (no state is carried between steps: a ReLU has no membrane), and the read-out averages the
steps' logits as it does for spikes. For a clip whose T steps are different windows (audio frames,
video frames) that is what "the same network on the same data" means; collapsing T would give the
twin other input. Its output is real-valued, so the profiler types the layers it feeds as real
(MAC) layers: every convention prices them as MACs over the T steps (``docs/training.md``).
NIR has no ReLU node: ``qkf export nir`` refuses it in one line (``hardware/nir/nodes.py``).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from qkf_snn.models.neurons.lif import MultiStepNeuron, register_neuron


@register_neuron
class ReLU(MultiStepNeuron):
    """min(max(x, 0), 1) per step; reads no neuron setting (threshold, τ, surrogate do not apply)."""

    kind: ClassVar[str] = "relu"
    spiking: ClassVar[bool] = False
    ceiling: ClassVar[float] = 1.0  # the clip (see the module doc)

    def __init__(self, **kwargs) -> None:
        super().__init__(beta=0.0, **kwargs)

    def run(self, x: torch.Tensor, record_mem: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.dim() < 2:
            raise ValueError(f"{type(self).__name__} expects [T, B, ...], got shape {tuple(x.shape)}")
        y = torch.clamp(x, 0.0, self.ceiling)
        return y, (y if record_mem else None)

    def extra_repr(self) -> str:
        return f"kind=relu (ANN twin: min(max(x, 0), {self.ceiling:g}) per step, no state)"
