"""A quantized model is profiled with the 45 nm INT8 constants and its report says so (JSON, Markdown,
terminal), on a model small enough to count by hand; a QAT model is profiled as its quantization."""

from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console
from torch import nn

from qkf_snn.hardware.profile import markdown, profile_model
from qkf_snn.hardware.profile.energy import arithmetic_for
from qkf_snn.hardware.profile.report import build_report
from qkf_snn.hardware.profile.terminal import rich_tables
from qkf_snn.models.blocks import ConvBNSpike
from qkf_snn.models.quant import QuantSpec, enable_qat, quantize_model


class Tiny(nn.Module):
    """A 1×1 conv (1 → 2 channels, weights 1 and 1/2; BN the identity) into the default LIF (τ = 2,
    θ = 1), token mean, Linear head (2 → 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = ConvBNSpike(1, 2, kernel_size=1)
        self.head = nn.Linear(2, 3)
        with torch.no_grad():
            self.conv.conv.weight.copy_(torch.tensor([1.0, 0.5]).reshape(2, 1, 1, 1))
            self.conv.bn.eps = 2.0**-20
            self.conv.bn.running_var.fill_(1 - 2.0**-20)  # var + eps = 1 exactly: BN is the identity
            self.head.weight.copy_(torch.tensor([[0.5, -0.25], [0.125, 1.0], [0.0, 0.75]]))
            self.head.bias.zero_()
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.conv(x.transpose(0, 1))
        return self.head(s.flatten(3).mean(3)).mean(0)


# one clip, T = 2, one 2×2 channel: step 0 [2 0; 1 3], step 1 [0 4; 2 2]
CLIP = torch.tensor([[[[2.0, 0.0], [1.0, 3.0]]], [[[0.0, 4.0], [2.0, 2.0]]]]).unsqueeze(0)
# By hand. Conv: 6 nonzero inputs × 2 outputs = 12 MACs. LIF channel 0 (input X): H = X/2 → step 0
# fires at 2 and 3 (V left [0 0; .5 0]); step 1 H = V + (X − V)/2 = [0 2; 1.25 1] → 3 spikes.
# Channel 1 (X/2): step 0 H = [.25 0; .125 .375]... none; step 1 one spike (H = 1 at the 4). So 6
# spikes; head inputs (token means) [2/4, 0] and [3/4, 1/4]: 3 nonzero × 3 outputs = 9 MACs.
SPIKES, MACS = 6, 12 + 9


@pytest.mark.parametrize(
    "bits,arithmetic,pj_per_mac",
    [(None, "fp32", 4.6), (8, "int8", 0.23), (4, "int8", 0.23), (12, "fp32", 4.6)],
)
def test_the_main_energy_uses_the_arithmetic_of_the_weights(bits, arithmetic, pj_per_mac):
    model = Tiny()
    if bits is not None:  # weights 1, 1/2 and the head's are powers of two times small integers:
        model = quantize_model(model, QuantSpec(bits))  # quantization changes no spike here
    doc = build_report(profile_model(model, [CLIP]))
    exact = doc["totals"]["conventions"]["exact"]
    assert (doc["totals"]["per_sample"]["spikes"], exact["mac"], exact["ac"]) == (SPIKES, MACS, 0)
    main = doc["energy"]["models"][doc["energy"]["main"]]
    assert doc["energy"]["main"] == f"h45_{arithmetic}_exact" and doc["energy"]["arithmetic"] == arithmetic
    assert main["total_pj"] == pytest.approx(MACS * pj_per_mac, rel=1e-12)  # 96.6 pJ FP32, 4.83 pJ INT8
    assert exact[f"energy_h45_{arithmetic}_pj"] == pytest.approx(MACS * pj_per_mac, rel=1e-12)
    precision = "float32" if bits is None else f"int{bits} per-channel"
    assert doc["protocol"]["weight_precision"] == precision and doc["protocol"]["arithmetic"] == arithmetic
    assert doc["protocol"]["arithmetic_reason"] == arithmetic_for(bits)[1]
    text = markdown(doc)
    assert f"Precision assumed: weights {precision}; energy priced with 45 nm {arithmetic.upper()}" in text
    assert f"E @45 nm {arithmetic.upper()} (µJ)" in text
    console = Console(file=io.StringIO(), width=200, color_system=None, force_terminal=False)
    for table in rich_tables(doc):
        console.print(table)
    shown = " ".join(console.file.getvalue().split())  # titles wrap to the table width
    assert f"weights {precision}, energy at 45 nm {arithmetic.upper()}" in shown
    assert f"µJ @45nm {arithmetic.upper()}" in shown


def test_a_qat_model_is_profiled_as_its_quantization():
    torch.manual_seed(0)
    model = Tiny()
    with torch.no_grad():  # weights that quantization does change at 4 bits
        model.conv.conv.weight.copy_(torch.tensor([0.9, 0.37]).reshape(2, 1, 1, 1))
    spec = QuantSpec(4)
    ptq = build_report(profile_model(quantize_model(model, spec), [CLIP]))
    qat_model = enable_qat(model, spec)
    qat = build_report(profile_model(qat_model, [CLIP]))
    assert qat_model.qat_spec == spec and not qat_model.training  # the model itself is left as it was
    assert qat["totals"]["conventions"] == ptq["totals"]["conventions"]
    assert (
        qat["energy"]["main"] == "h45_int8_exact"
        and qat["protocol"]["weight_precision"] == "int4 per-channel"
    )
    assert qat["totals"]["per_sample"]["spikes"] == ptq["totals"]["per_sample"]["spikes"] > 0
