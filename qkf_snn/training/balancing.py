"""Modality balancing for audio-visual training.

OGM-GE (Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient Modulation", CVPR 2022).
After the backward pass, per batch::

    s_m = Σ_i softmax(z_m,i)[y_i]        z_m: modality m's additive share of the fused logits
    ρ_a = s_a / s_v,  ρ_v = s_v / s_a
    k_m = 1 − tanh(α · ρ_m)  for the modality with ρ_m > 1 (the dominant one), k = 1 for the other

and every weight gradient of encoder m becomes ``k_m · g + N(0, std(g)²)`` (the Gaussian term is the
"generalisation enhancement"; the original adds it to both encoders while modulation is on).

The original trains with SGD, where scaling a gradient scales the step. Adam-type optimisers divide
by a running RMS of the gradient, which undoes a rescaling that persists over steps (the dominant
modality is usually the same one for many steps), so with AdamW ``target="step"`` (the default)
applies k_m to the encoder's step instead: its parameter groups' learning rate for that step.
``target="gradient"`` reproduces the original, gradient for gradient. The
original code applies this to 4-D (convolution) weights of ResNet-18; QKFormer's token mixing is in
Conv1d/Linear layers, so here every weight with ≥ 2 dimensions of the encoder is modulated. Biases
and BatchNorm parameters are left alone.

Under DDP the scores are summed over ranks before ρ is formed and the noise comes from a generator
seeded by (seed, step), so every rank applies the same modulation to its (already averaged) gradients
and the replicas stay identical.

Unimodal auxiliary losses: ``aux_weight · (CE(audio head) + CE(video head))`` keeps each encoder
learning a classifier of its own (:class:`UnimodalCE`, one loss term per head). With ``aux_weight = 0``
the loop still trains the heads, on detached features (linear probes), so per-modality accuracy is
always reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from qkf_snn.training.config import BalanceConfig, TrainConfig
from qkf_snn.training.data import step_seed
from qkf_snn.training.distributed import all_reduce_sum
from qkf_snn.training.terms import LossTerm


@dataclass
class Modulation:
    """One step's OGM coefficients and the ratio they came from (logged)."""

    coeff_audio: float = 1.0
    coeff_video: float = 1.0
    ratio_audio: float = 1.0  # s_audio / s_video


def ogm_coefficients(score_audio: float, score_video: float, alpha: float) -> Modulation:
    """``k = 1 − tanh(α·ρ)`` for the modality whose score ratio exceeds 1, 1 for the other."""
    ratio_a = score_audio / max(score_video, 1e-12)
    if ratio_a > 1:
        return Modulation(coeff_audio=1 - math.tanh(alpha * ratio_a), ratio_audio=ratio_a)
    ratio_v = 1 / max(ratio_a, 1e-12)
    if ratio_v > 1:
        return Modulation(coeff_video=1 - math.tanh(alpha * ratio_v), ratio_audio=ratio_a)
    return Modulation(ratio_audio=ratio_a)


def modality_scores(outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> tuple[float, float]:
    """Σ over the batch (and over DDP ranks) of each modality's softmax score on the true class."""
    with torch.no_grad():
        scores = torch.stack(
            [
                F.softmax(outputs[f"{m}_part"].float(), dim=-1).gather(1, labels[:, None]).sum()
                for m in ("audio", "video")
            ]
        )
        all_reduce_sum(scores)
    return float(scores[0]), float(scores[1])


def modulated_parameters(encoder: nn.Module) -> list[torch.Tensor]:
    """The weights OGM-GE rescales: every parameter of ≥ 2 dimensions (conv and linear weights)."""
    return [p for p in encoder.parameters() if p.dim() >= 2 and p.requires_grad]


@torch.no_grad()
def modulate_gradients(
    params: list[torch.Tensor], coeff: float, *, noise: bool, generator: torch.Generator | None
) -> None:
    """``g ← coeff·g (+ N(0, std(g)²))`` for each parameter with a gradient."""
    for p in params:
        if p.grad is None:
            continue
        g = p.grad
        std = float(g.float().std()) + 1e-8 if noise and g.numel() > 1 else 0.0
        g.mul_(coeff)
        if noise:
            g.add_(torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype) * std)


def apply_ogm_ge(
    model: nn.Module,
    outputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    cfg: BalanceConfig,
    *,
    seed: int,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
) -> Modulation:
    """Compute this batch's coefficients and apply them to the two encoders: to the gradients
    (``target="gradient"``, the original) or to this step's learning rate of the encoders' parameter
    groups (``target="step"``; groups carry ``"modality"``, and the scheduler's next step restores
    their learning rates). GE noise goes to the gradients in both cases."""
    on_gradient = cfg.target == "gradient"
    if not on_gradient and optimizer is None:
        raise ValueError("OGM-GE with target 'step' needs the optimizer")
    mod = ogm_coefficients(*modality_scores(outputs, labels), cfg.alpha)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(step_seed(seed, step)) if cfg.noise else None
    for name, encoder, coeff in (
        ("audio", model.audio, mod.coeff_audio),
        ("video", model.video, mod.coeff_video),
    ):
        modulate_gradients(
            modulated_parameters(encoder), coeff if on_gradient else 1.0, noise=cfg.noise, generator=generator
        )
        if not on_gradient:
            for group in optimizer.param_groups:
                if group.get("modality") == name:
                    group["lr"] *= coeff
    return mod


def ogm_active(cfg: BalanceConfig, epoch: int) -> bool:
    return cfg.ogm_ge and cfg.start_epoch <= epoch <= cfg.end_epoch


class UnimodalCE(LossTerm):
    """``weight · CE(modality head)``: keeps an encoder learning a classifier of its own (on detached
    features when the heads are linear probes). Logged as ``ce_<modality>``."""

    def __init__(self, modality: str, weight: float, label_smoothing: float) -> None:
        self.name, self.modality = f"ce_{modality}", modality
        self.weight, self.label_smoothing = weight, label_smoothing

    def __call__(self, outputs, batch) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(
            outputs[self.modality].float(), batch["label"], label_smoothing=self.label_smoothing
        )
        return self.weight * ce, {self.name: ce.item()}


def trains_probe_heads(cfg: TrainConfig, model: nn.Module) -> bool:
    """With aux_weight 0, an AV model's unimodal heads still train, as linear probes on detached
    features: per-modality accuracy is reported without the heads steering the encoders."""
    return len(model.modalities) > 1 and cfg.balance.aux_weight == 0 and getattr(model, "probe_heads", False)


def unimodal_terms(cfg: TrainConfig, model: nn.Module) -> list[LossTerm]:
    """The auxiliary terms of an AV model: always in the graph (weight 0 when off), so DDP sees every
    head used; weight 1 on the probe heads' detached features."""
    if len(model.modalities) < 2:
        return []
    weight = 1.0 if trains_probe_heads(cfg, model) else cfg.balance.aux_weight
    return [UnimodalCE(m, weight, cfg.optim.label_smoothing) for m in model.modalities]
