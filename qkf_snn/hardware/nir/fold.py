"""BatchNorm folding: every Conv → BN pair of a model becomes one Conv with a bias.

In eval mode BN is affine per channel: ``y = γ (z − μ) / √(σ² + ε) + β`` with ``z = W x + b``, so
``y = W' x + b'`` with ``W' = W · g``, ``b' = (b − μ) · g + β`` and ``g = γ / √(σ² + ε)``. The fold is
computed in float64 and rounded once to float32.

Folding changes how the conv output is rounded, so a folded model is *not* bit-identical to the
original: a membrane within a few ulps of the threshold may fire in one and not the other. That is
why the NIR check compares the graph with the *folded* PyTorch model (same weights, same rounding)
and :func:`compare_folding` measures folded vs original separately, as an agreement rate.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from qkf_snn.models.blocks import ConvBNSpike
from qkf_snn.models.neurons import MultiStepNeuron
from qkf_snn.models.quant import fold_conv_bn

Batch = dict[str, torch.Tensor] | torch.Tensor


def folded_conv_params(conv: nn.Module, bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """``(weight, bias)`` of ``conv`` with ``bn`` folded in, float32 numpy; ``bn`` may already be an
    ``Identity`` (a folded model), then the conv's own weight and bias (zeros if none) are returned.
    The fold itself is :func:`qkf_snn.models.quant.fold_conv_bn` (QAT folds exactly the same way)."""
    with torch.no_grad():
        weight, bias = fold_conv_bn(conv, bn)
    return weight.numpy(), bias.numpy()


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode where every :class:`ConvBNSpike`'s BN is folded into its
    conv (``bn`` becomes ``Identity``, the conv gains a bias). The original is left untouched."""
    folded = copy.deepcopy(model).eval()
    for unit in folded.modules():
        if isinstance(unit, ConvBNSpike) and not isinstance(unit.bn, nn.Identity):
            weight, bias = folded_conv_params(unit.conv, unit.bn)
            conv = unit.conv
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.empty(conv.out_channels))
            conv.weight.copy_(torch.from_numpy(weight))
            conv.bias.copy_(torch.from_numpy(bias))
            unit.bn = nn.Identity()
    return folded


@dataclass
class FoldReport:
    """Folded vs original model on the same inputs (per-step logits and every neuron's spikes)."""

    samples: int
    spikes_total: int  # neuron-steps compared
    spikes_differing: int
    logits_max_abs_diff: float
    predictions_agreeing: int  # argmax of the mean logits

    @property
    def spike_agreement(self) -> float:
        return 1.0 - self.spikes_differing / max(self.spikes_total, 1)


def neuron_outputs(model: nn.Module, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every neuron's output (by module path) and the per-step logits of one ``forward_steps``."""
    spikes: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, n=n: spikes.__setitem__(n, out))
        for n, m in model.named_modules()
        if isinstance(m, MultiStepNeuron)
    ]
    try:
        steps = model.forward_steps(batch)
    finally:
        for h in hooks:
            h.remove()
    return spikes, steps


@torch.no_grad()
def compare_folding(model: nn.Module, folded: nn.Module, batches: Iterable[Batch]) -> FoldReport:
    """How closely the folded model follows the original (both in eval mode)."""
    model, folded = model.eval(), folded.eval()
    samples = total = differing = agree = 0
    max_diff = 0.0
    for batch in batches:
        ref_spikes, ref_steps = neuron_outputs(model, batch)
        new_spikes, new_steps = neuron_outputs(folded, batch)
        for name, ref in ref_spikes.items():
            total += ref.numel()
            differing += int((ref != new_spikes[name]).sum())
        max_diff = max(max_diff, float((ref_steps - new_steps).abs().max()))
        agree += int((ref_steps.mean(0).argmax(-1) == new_steps.mean(0).argmax(-1)).sum())
        samples += ref_steps.shape[1]
    return FoldReport(samples, total, differing, max_diff, agree)
