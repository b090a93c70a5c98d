"""Integer weights for spiking models: symmetric, power-of-two-scaled quantization of the BN-folded
weights, shared by post-training quantization (``quantize_model``, what ``qkf export nir
--weight-bits N`` exports) and quantization-aware training (``enable_qat``, ``qkf train --qat-bits``).

Per layer (or per output channel) with N bits: ``W = s·Q``, ``Q`` integers in ``[−qmax, qmax]``,
``qmax = 2^(N−1) − 1``, ``s = 2^⌈log2(max|W| / qmax)⌉``; the bias ``b = s·round(b / s)``, an integer at
the membrane's scale. ``s`` is a power of two so that the float model and the integer graph compute
*the same numbers*: multiplying by ``2^k`` is exact in binary floating point (barring overflow and
subnormals), so every conv output, membrane and comparison of the float model (weights ``s·Q``,
threshold θ) is exactly ``s`` times the integer graph's (weights ``Q``, threshold ``θ/s``), and the
spikes are identical by construction. An arbitrary ``max|W|/qmax`` scale would use up to one more bit
of the range, but ``s·H`` and ``H`` then round differently and spikes near θ could differ.

How the scale passes through a neuron. Every neuron here is linear in its input, membrane and
reset value: the SpikingJelly-form LIF ``H = V + (X − (V − v_reset))/τ``, the snnTorch form
``U = β·U + g·X``, IF. With ``X = s·X'``, ``V = s·V'``, ``v_reset = s·v_reset'`` (s > 0):
``H = s·H'``, and ``H ≥ θ ⇔ H' ≥ θ/s``; after a spike ``V = v_reset = s·v_reset'``, so the state stays
scaled. So the scale moves into the threshold (``θ/s``) and into the reset value (``v_reset/s``;
0 for our zero reset, so nothing changes), and a soft (subtract) reset subtracts θ/s. τ, β and the
input gain are *unchanged*: the leak is a ratio of two membrane values. A scale that is not applied to
v_reset (or a leak toward a nonzero ``v_leak``) would change the spikes; a negative scale would flip
the comparator. The scale is folded into the threshold, not the input gain: Norse's reader ignores
NIR's ``r``, and the SpikingJelly form's gain is implicit (``1/τ``).

Quantization-aware training freezes BN (running statistics, not batch statistics) and runs each conv
with ``s·round(W_folded/s)`` (straight-through estimator: the rounding passes gradients unchanged), the
fold computed exactly as the exporter computes it (float64, rounded once to float32), so a QAT model's
forward *is* its post-training quantization at the same bits. The read-out (the classification
head(s)) is quantized per layer with one scale shared by every Linear that feeds the logits.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from qkf_snn.errors import UserError
from qkf_snn.models.blocks import ConvBNSpike

MIN_BITS, MAX_BITS = 2, 16


def check_bits(bits: object, name: str) -> None:
    """One line naming ``name`` (an option, a config key) unless ``bits`` is a supported width."""
    if not isinstance(bits, int) or isinstance(bits, bool) or not MIN_BITS <= bits <= MAX_BITS:
        raise UserError(f"{name}: must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")


@dataclass(frozen=True)
class QuantSpec:
    """``bits``-bit symmetric integers, one scale per output channel or per layer."""

    bits: int
    per_channel: bool = True

    def __post_init__(self) -> None:
        check_bits(self.bits, "weight bits")

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    @property
    def granularity(self) -> str:
        return "per-channel" if self.per_channel else "per-layer"

    def describe(self) -> str:
        return f"int{self.bits} {self.granularity}"


def pow2_scale(w: torch.Tensor, qmax: int, per_channel: bool) -> torch.Tensor:
    """The smallest power of two ``s`` with ``max|w| / s ≤ qmax``: per output channel (dim 0, shape
    ``[C]``) or one for the tensor (shape ``[1]``); 1 for an all-zero channel. float32, detached."""
    w = w.detach().float()
    peak = w.abs().flatten(1).amax(1) if per_channel and w.dim() > 1 else w.abs().amax().reshape(1)
    mantissa, exponent = torch.frexp(peak.double() / qmax)  # ratio = m·2^e, m in [0.5, 1)
    exponent = torch.where(mantissa == 0.5, exponent - 1, exponent)  # exactly a power of two
    exponent = torch.where(peak > 0, exponent, torch.zeros_like(exponent)).clamp(-126, 127)
    return torch.ldexp(torch.ones_like(peak), exponent).float()


class _RoundSTE(torch.autograd.Function):
    """round() whose gradient is the identity (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return _RoundSTE.apply(x)


def _per_out(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return scale.reshape(-1, *([1] * (like.dim() - 1)))


def fold_conv_bn(conv: nn.Module, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)`` of ``conv`` with eval-mode ``bn`` folded in, float32, differentiable:
    ``W' = W·g``, ``b' = (b − μ)·g + β``, ``g = γ/√(σ² + ε)``, computed in float64 and rounded once
    (the exporter's fold, ``hardware/nir/fold.py``, is this function). ``bn`` may be ``Identity``."""
    weight = conv.weight.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
    if isinstance(bn, nn.modules.batchnorm._BatchNorm):
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError("BatchNorm without running statistics cannot be folded")
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(bias)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(bias)
        g = gamma / torch.sqrt(bn.running_var.double() + bn.eps)
        weight = weight * g.reshape(-1, *([1] * (weight.dim() - 1)))
        bias = (bias - bn.running_mean.double()) * g + beta
    elif not isinstance(bn, nn.Identity):
        raise TypeError(f"cannot fold {type(bn).__name__} into a convolution")
    return weight.float(), bias.float()


def quantize_weights(
    weight: torch.Tensor, bias: torch.Tensor, spec: QuantSpec, *, ste: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(Q, B, s)``: integer-valued weights ``Q`` (|Q| ≤ qmax), integer bias ``B = round(b/s)`` and the
    power-of-two scale ``s`` (``[C]`` or ``[1]``), so that ``W ≈ s·Q`` and ``b ≈ s·B``. With ``ste``
    the rounding passes gradients straight through to ``weight`` and ``bias``."""
    rnd = round_ste if ste else torch.round
    s = pow2_scale(weight, spec.qmax, spec.per_channel)
    q = rnd(weight / _per_out(s, weight)).clamp(-spec.qmax, spec.qmax)  # w/s is exact: s = 2^k
    b = rnd(bias / s.expand(bias.shape[0]))
    return q, b, s


def fake_quant_conv(conv: nn.Module, bn: nn.Module, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias a QAT conv runs with: ``s·Q`` and ``s·B`` of the BN-folded parameters
    (straight-through gradients to the conv weight and BN's γ, β)."""
    q, b, s = quantize_weights(*fold_conv_bn(conv, bn), spec, ste=True)
    return q * _per_out(s, q), b * s.expand(b.shape[0])


# -- the read-out -----------------------------------------------------------------------------------------
def readout_linears(model: nn.Module) -> list[nn.Linear]:
    """The Linear layers whose weights make up the logits (a QKFormer's head, an AV model's fusion
    head or its two modality heads for ``sum``): the fusion's own ``readout`` names them."""
    method = getattr(model, "method", None)
    if method is not None and getattr(method, "readout", None) is not None:  # AVClassifier
        wa, wv, _ = method.readout(model)
        storages = {wa.untyped_storage().data_ptr(), wv.untyped_storage().data_ptr()}
        return [
            m
            for m in model.modules()
            if isinstance(m, nn.Linear) and m.weight.untyped_storage().data_ptr() in storages
        ]
    encoder = getattr(model, "encoder", model)
    head = getattr(encoder, "head", None)
    return [head] if isinstance(head, nn.Linear) else []


def readout_scale(linears: list[nn.Linear], spec: QuantSpec) -> torch.Tensor:
    """One power-of-two scale for all read-out weights (a per-class scale would change the argmax)."""
    peak = torch.stack([lin.weight.detach().abs().amax() for lin in linears]).amax()
    return pow2_scale(peak.reshape(1), spec.qmax, per_channel=False)


class _ReadoutQAT:
    """Forward hook of a read-out Linear under QAT: recompute its output with ``σ·round(W/σ)`` and
    ``σ·round(b/σ)``, σ shared by the whole read-out group."""

    def __init__(self, group: list[nn.Linear], spec: QuantSpec) -> None:
        self.group, self.spec = group, spec

    def __call__(self, module: nn.Linear, args: tuple, output: torch.Tensor) -> torch.Tensor:
        sigma = readout_scale(self.group, self.spec)
        weight = round_ste(module.weight / sigma).clamp(-self.spec.qmax, self.spec.qmax) * sigma
        bias = round_ste(module.bias / sigma) * sigma if module.bias is not None else None
        return F.linear(args[0], weight, bias)


# -- QAT and PTQ on a model -------------------------------------------------------------------------------
def _spiking_convs(model: nn.Module) -> list[ConvBNSpike]:
    return [m for m in model.modules() if isinstance(m, ConvBNSpike)]


def enable_qat(model: nn.Module, spec: QuantSpec) -> nn.Module:
    """Switch ``model`` (in place) to quantization-aware forward passes: every Conv→BN→neuron unit
    runs its BN-folded weights fake-quantized (BN frozen at its running statistics), the read-out
    Linears likewise. The parameters and the state dict keep their names and float values."""
    disable_qat(model)
    for unit in _spiking_convs(model):
        unit.qat = spec
    group = readout_linears(model)
    hook = _ReadoutQAT(group, spec)
    for lin in group:
        lin._qat_handle = lin.register_forward_hook(hook)
    model.qat_spec = spec
    return model


def disable_qat(model: nn.Module) -> nn.Module:
    for unit in _spiking_convs(model):
        unit.qat = None
    for m in model.modules():
        handle = m.__dict__.pop("_qat_handle", None)
        if handle is not None:
            handle.remove()
    model.__dict__.pop("qat_spec", None)
    return model


def quant_spec_of(model: nn.Module) -> QuantSpec | None:
    """The quantization a model runs with: post-training (``quantize_model``) or QAT; None for float."""
    return getattr(model, "quant_spec", None) or getattr(model, "qat_spec", None)


@torch.no_grad()
def quantize_model(model: nn.Module, spec: QuantSpec) -> nn.Module:
    """A post-training-quantized copy of ``model`` (eval mode; the original is untouched): every
    Conv→BN→neuron unit gets BN folded and weights ``s·Q``, bias ``s·B`` (``unit.weight_scale = s``,
    per output channel ``[C]``); the read-out Linears get ``σ·Q``, ``σ·B`` with one shared σ
    (``model.readout_scale``). ``model.quant_spec`` records ``spec``. A QAT model quantizes to exactly
    its own forward pass."""
    q = disable_qat(copy.deepcopy(model)).eval()
    for unit in _spiking_convs(q):
        weights, bias, s = quantize_weights(*fold_conv_bn(unit.conv, unit.bn), spec)
        conv = unit.conv
        if conv.bias is None:
            conv.bias = nn.Parameter(torch.empty(conv.out_channels))
        conv.weight.copy_(weights * _per_out(s, weights))
        conv.bias.copy_(bias * s.expand(bias.shape[0]))
        unit.bn = nn.Identity()
        unit.weight_scale = s.expand(conv.out_channels).clone()
    group = readout_linears(q)
    if group:
        sigma = readout_scale(group, spec)
        for lin in group:
            lin.weight.copy_(torch.round(lin.weight / sigma).clamp(-spec.qmax, spec.qmax) * sigma)
            if lin.bias is not None:
                lin.bias.copy_(torch.round(lin.bias / sigma) * sigma)
        q.readout_scale = float(sigma)
    q.quant_spec = spec
    return q
