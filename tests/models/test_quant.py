"""Quantization-aware forward passes (models/quant.py): a QAT model computes exactly what its
post-training quantization at the same bits computes (every spike, every logit), gradients pass the
rounding straight through, and BN stays frozen."""

from __future__ import annotations

import pytest
import torch

from qkf_snn.hardware.nir.fold import neuron_outputs
from qkf_snn.models import create_model, recalibrate_bn
from qkf_snn.models.quant import QuantSpec, disable_qat, enable_qat, quantize_model, readout_linears


@pytest.mark.parametrize("fusion,spec", [("concat", QuantSpec(4)), ("sum", QuantSpec(6, per_channel=False))])
def test_qat_forward_is_its_post_training_quantization(fusion, spec):
    torch.manual_seed(0)
    model = create_model("qkf_av_tiny_deploy", input_size=(16, 16), num_classes=4, fusion=fusion)
    batch = model.example_batch(2)
    recalibrate_bn(model, [batch])
    for v in batch.values():  # one clip of small integers: membranes exactly on θ
        v[0] = torch.randint(0, 3, v[0].shape).float()
    ptq = quantize_model(model, spec)
    qat = enable_qat(model, spec)
    ref_spikes, ref_logits = neuron_outputs(ptq, batch)
    got_spikes, got_logits = neuron_outputs(qat.eval(), batch)
    assert ref_spikes.keys() == got_spikes.keys() and len(ref_spikes) > 40
    for name, s in ref_spikes.items():
        assert torch.equal(got_spikes[name], s), name
    assert torch.equal(got_logits, ref_logits)
    assert sum(int(s.sum()) for s in ref_spikes.values()) > 1000
    # quantizing the QAT model gives the same weights as quantizing the float one
    again = quantize_model(qat, spec)
    for (n, a), (_, b) in zip(again.state_dict().items(), ptq.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    with torch.no_grad():  # and it is not the float model
        assert not torch.equal(disable_qat(model).forward_steps(batch), ref_logits)


def test_qat_gradients_pass_the_rounding_and_bn_stays_frozen():
    torch.manual_seed(0)
    model = create_model("qkf_audio_tiny_deploy", input_size=(16, 16), num_classes=4)
    x = model.example_input(2, sequence=True)
    recalibrate_bn(model, [x])
    enable_qat(model, QuantSpec(4)).train()
    stem = model.stages[0].embed.layers[0]
    stats = stem.bn.running_mean.clone(), stem.bn.running_var.clone()
    model(x).sum().backward()
    assert torch.equal(stem.bn.running_mean, stats[0]) and torch.equal(stem.bn.running_var, stats[1])
    assert stem.conv.weight.grad is not None and stem.conv.weight.grad.abs().sum() > 0
    assert stem.bn.weight.grad.abs().sum() > 0 and stem.bn.bias.grad.abs().sum() > 0
    head = readout_linears(model)
    assert head == [model.head] and model.head.weight.grad.abs().sum() > 0
    # the state dict keeps its names: a QAT checkpoint loads into a float model and back
    assert set(model.state_dict()) == set(create_model("qkf_audio_tiny_deploy").state_dict())
