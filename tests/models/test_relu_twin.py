"""The ANN twin's unit (`--neuron relu`): a clipped ReLU per step, real-valued, no state."""

from __future__ import annotations

import torch

from qkf_snn.models import create_model
from qkf_snn.models.neurons import NEURONS, NeuronConfig, ReLU


def test_relu_is_one_entry_of_the_neuron_table_and_computes_relu1_per_step():
    assert NEURONS["relu"] is ReLU and not ReLU.spiking
    unit = NeuronConfig(kind="relu").build(threshold=0.5)  # the attention's threshold does not apply
    x = torch.randn(3, 2, 5) * 2
    x[0, 0, :3] = torch.tensor([0.0, 1.0, -0.0])  # the clip's edges
    y = unit(x)
    assert torch.equal(y, torch.clamp(x, 0, 1)) and torch.equal(unit(x[1:2]), y[1:2])  # no state over T
    x.requires_grad_(True)
    unit(x).sum().backward()
    assert torch.equal(x.grad, ((x >= 0) & (x <= 1)).float())  # torch.clamp passes the edges


def test_the_twin_is_the_same_architecture_with_every_neuron_replaced():
    snn = create_model("qkf_audio_tiny", input_size=(16, 16), time_steps=2)
    ann = create_model("qkf_audio_tiny", input_size=(16, 16), time_steps=2, neuron={"kind": "relu"})
    kinds = {type(m).__name__ for m in ann.modules() if hasattr(m, "spiking")}
    assert kinds == {"ReLU"}
    assert [n for n, _ in snn.named_parameters()] == [n for n, _ in ann.named_parameters()]
    out = ann(torch.rand(2, 2, 1, 16, 16))
    assert out.shape == (2, snn.head.out_features) and torch.isfinite(out).all()
