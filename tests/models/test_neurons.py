"""Neurons: the multi-step modules equal snnTorch stepped by hand, reproduce SpikingJelly's LIF, and
fire on >= for integer inputs at the attention threshold."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from snntorch import surrogate as snn_surrogate

from qkf_snn.errors import UserError
from qkf_snn.models.neurons import (
    IF,
    LIF,
    PLIF,
    QIF,
    SURROGATES,
    NeuronConfig,
    effective_threshold,
    make_neuron,
    surrogate_spec,
)


def snntorch_loop(leaky: snn.Leaky, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The snnTorch tutorial way: one call per step, membrane carried by hand."""
    mem = leaky.init_leaky()
    spikes, mems = [], []
    for t in range(x.shape[0]):
        spk, mem = leaky(x[t], mem)
        spikes.append(spk)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
@pytest.mark.parametrize("comparator", ["ge", "gt"])
@pytest.mark.parametrize("tau,threshold", [(2.0, 1.0), (3.0, 0.5), (1.5, 0.7)])
def test_lif_equals_snntorch_step_loop(reset, comparator, tau, threshold):
    x = torch.randn(8, 3, 5, 4) * 2
    ours = make_neuron("lif", tau=tau, threshold=threshold, reset=reset, comparator=comparator)
    beta = 1.0 - 1.0 / tau
    plain = snn.Leaky(
        beta=beta,
        threshold=effective_threshold(threshold, comparator),
        reset_mechanism=reset,
        spike_grad=snn_surrogate.sigmoid(slope=4.0),
    )
    ref_spk, ref_mem = snntorch_loop(plain, x * ours.input_scale)
    spk, mem = ours.run(x)
    assert torch.equal(spk, ref_spk)
    assert torch.equal(mem, ref_mem)
    assert 0 < spk.mean() < 1  # the comparison is not vacuous


def test_if_and_plif_equal_snntorch_step_loop():
    x = torch.randn(6, 2, 7)
    spk, mem = IF(threshold=1.0).run(x)
    ref = snntorch_loop(
        snn.Leaky(beta=1.0, threshold=effective_threshold(1.0, "ge"), reset_mechanism="zero"), x
    )
    assert torch.equal(spk, ref[0]) and torch.equal(mem, ref[1])

    plif = PLIF(init_tau=2.0)
    spk, mem = plif.run(x)
    plain = snn.Leaky(beta=0.5, threshold=effective_threshold(1.0, "ge"), reset_mechanism="zero")
    ref = snntorch_loop(plain, x * 0.5)
    assert torch.equal(spk, ref[0]) and torch.equal(mem.detach(), ref[1])


def test_qif_follows_its_equation():
    x = torch.rand(10, 4, 6) * 1.5
    neuron = QIF(tau=2.0, a0=1.0, v_c=0.8, v_rest=0.0, threshold=1.0)
    spk, mem = neuron.run(x)
    theta = effective_threshold(1.0, "ge")
    u = torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        u = u * (1 - (u > theta).float())  # reset where the previous step spiked
        u = u + (x[t] + 1.0 * (u - 0.0) * (u - 0.8)) / 2.0
        assert torch.equal(mem[t], u)
        assert torch.equal(spk[t], (u > theta).float())
    assert spk.sum() > 0


def test_lif_reproduces_spikingjelly_lif_exactly():
    """Official QKFormer neuron: SpikingJelly LIF, tau 2, hard reset 0, detached reset. On dyadic
    inputs every float operation is exact, so membranes and spikes must agree bit for bit."""
    from spikingjelly.activation_based import neuron, surrogate

    x = torch.randint(-8, 24, (12, 3, 50)).float() / 8
    for threshold in (1.0, 0.5):
        sj = neuron.LIFNode(
            tau=2.0,
            v_threshold=threshold,
            v_reset=0.0,
            detach_reset=True,
            surrogate_function=surrogate.Sigmoid(alpha=4.0),
            step_mode="m",
            store_v_seq=True,
        )
        sj_spk = sj(x)
        ours_spk, ours_mem = make_neuron("lif", tau=2.0, threshold=threshold).run(x)
        assert torch.equal(ours_spk, sj_spk)
        # SpikingJelly stores the post-reset V; ours records the pre-reset H. V = H · (1 - S).
        assert torch.equal(ours_mem * (1 - ours_spk), sj.v_seq)
        assert sj_spk.sum() > 0


def test_attention_neuron_fires_on_one_q_spike():
    """An integer count of 1 gives H = 0.5 at the attention threshold 0.5: SpikingJelly fires."""
    counts = torch.tensor([[1.0, 0.0, 2.0, 3.0]])  # [T=1, N=4]
    ge = make_neuron("lif", tau=2.0, threshold=0.5, comparator="ge")(counts)
    gt = make_neuron("lif", tau=2.0, threshold=0.5, comparator="gt")(counts)
    assert ge.tolist() == [[1.0, 0.0, 1.0, 1.0]]
    assert gt.tolist() == [[0.0, 0.0, 1.0, 1.0]]
    # The float32 just below 0.5 (spacing below a power of two is 2^-25 there).
    assert effective_threshold(0.5, "ge").item() == 0.5 - 2**-25


def test_no_state_survives_between_calls():
    neuron = make_neuron("lif")
    x, other = torch.randn(5, 4, 3) * 2, torch.randn(5, 4, 3) * 2
    first = neuron(x)
    neuron(other)
    assert torch.equal(neuron(x), first)
    assert neuron.mem.numel() == 0  # nothing kept on the module after a call


def test_bf16_input_runs_in_float32():
    x = (torch.randint(0, 9, (4, 2, 16)).float() / 4).to(torch.bfloat16)  # exactly representable
    neuron = make_neuron("lif", threshold=0.5)
    out = neuron(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out.float(), neuron(x.float()))


@pytest.mark.parametrize("name", SURROGATES)
def test_every_surrogate_gives_a_gradient(name):
    x = (torch.randn(4, 3, 8) * 2).requires_grad_()
    spikes = make_neuron("lif", surrogate=name)(x)
    spikes.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


def test_surrogate_aliases_and_defaults():
    assert surrogate_spec("soft_sign").name == "fast_sigmoid"
    assert surrogate_spec("sigmoid").params == {"slope": 4.0}
    assert surrogate_spec("atan", alpha=3.0).params == {"alpha": 3.0}


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: make_neuron("lifx"), "unknown neuron 'lifx'"),
        (lambda: make_neuron("lif", surrogate="relu"), "unknown surrogate 'relu'"),
        (lambda: make_neuron("lif", surrogate="sigmoid", surrogate_params={"alpha": 1.0}), "takes ['slope']"),
        (lambda: make_neuron("lif", reset="soft"), "unknown reset 'soft'"),
        (lambda: make_neuron("lif", tau=0.5), "tau must be >= 1"),
        (lambda: make_neuron("lif", comparator="le"), "unknown comparator 'le'"),
        (lambda: make_neuron("lif", taux=2.0), "neuron 'lif'"),
    ],
)
def test_bad_settings_are_one_clear_line(call, message):
    with pytest.raises(UserError) as err:
        call()
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_neuron_config_builds_each_kind():
    for kind, cls in (("lif", LIF), ("plif", PLIF), ("if", IF), ("qif", QIF)):
        neuron = NeuronConfig(kind=kind).build(threshold=0.5)
        assert isinstance(neuron, cls)
        assert neuron.nominal_threshold == 0.5
    assert NeuronConfig.from_dict(NeuronConfig(tau=3.0).to_dict()) == NeuronConfig(tau=3.0)


def test_neurons_are_not_collected_by_snntorch():
    before = len(snn.SpikingNeuron.instances)
    for _ in range(5):
        make_neuron("lif")
    assert len(snn.SpikingNeuron.instances) == before
