"""Neurons: the snnTorch-form modules equal snnTorch stepped by hand, the SpikingJelly-form LIF equals
SpikingJelly 2.0's LIFNode bit for bit on random inputs, and both fire on >= for integer inputs at the
attention threshold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    NeuronConfig,
    effective_threshold,
    make_neuron,
    surrogate_names,
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
    ours = make_neuron(
        "lif", tau=tau, threshold=threshold, reset=reset, comparator=comparator, form="snntorch"
    )
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


def spikingjelly_lif(x: torch.Tensor, tau: float, threshold: float, reset: str, decay_input: bool = True):
    """SpikingJelly 2.0's multi-step ``LIFNode`` (the official QKFormer settings: detached reset,
    Sigmoid(alpha=4)): spikes, post-reset V[t], and the charged H[t] from the operator it calls."""
    from spikingjelly.activation_based import neuron, surrogate

    v_reset = 0.0 if reset == "zero" else None
    sj = neuron.LIFNode(
        tau=tau,
        decay_input=decay_input,
        v_threshold=threshold,
        v_reset=v_reset,
        detach_reset=True,
        surrogate_function=surrogate.Sigmoid(alpha=4.0),
        step_mode="m",
        store_v_seq=True,
    )
    spikes = sj(x)
    # LIFNode.multi_step_forward -> functional.lif_multi_step -> this op; its third output is H.
    op_spikes, _, charged = torch.ops.sj_lif.forward(
        x, torch.zeros_like(x[0]), tau, decay_input, threshold, v_reset, True, 4.0, True, 0
    )
    assert torch.equal(op_spikes, spikes)
    return spikes, sj.v_seq, charged


# The issue's example: H[1] = 0.4957603514194489 + (1.504239559173584 - 0.4957603514194489) / 2 rounds
# to exactly 1.0 (SpikingJelly fires), while 0.5·V + 0.5·X rounds to the float32 just below 1.0.
ISSUE_X = [0.9915207028388977, 1.504239559173584]


@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_issue_example_fires_like_spikingjelly(backend):
    x = torch.tensor(ISSUE_X).reshape(2, 1)
    sj_spikes, _, sj_h = spikingjelly_lif(x, 2.0, 1.0, "zero")
    assert sj_spikes.flatten().tolist() == [0.0, 1.0]
    spikes, h = make_neuron("lif", tau=2.0, threshold=1.0, backend=backend).run(x)
    assert torch.equal(spikes, sj_spikes) and torch.equal(h, sj_h)
    assert h[1].item() == 1.0
    # The snnTorch form (kept for snnTorch semantics) rounds H[1] one ulp below θ and stays silent.
    spikes, h = make_neuron("lif", tau=2.0, threshold=1.0, form="snntorch", backend=backend).run(x)
    assert spikes.flatten().tolist() == [0.0, 0.0]
    assert h[1].item() == torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)).item()


SHAPES = [(8, 4, 300), (5, 2, 3, 7, 11)]


@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("tau", [2.0, 1.5, 4 / 3, 3.0])
def test_lif_equals_spikingjelly_on_random_inputs(tau, reset, decay_input):
    """Random normal inputs (not dyadic: every rounding step can differ), several seeds, shapes and
    thresholds: spikes, pre-reset H and post-reset V are torch.equal to SpikingJelly 2.0's LIFNode,
    for the reference and fused backends."""
    compared = fired = 0
    for seed, shape, threshold in zip(range(4), SHAPES * 2, (1.0, 0.5, 0.7, 1.0), strict=True):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(shape, generator=gen) * (1.5 if decay_input else 0.6)
        sj_spikes, sj_v, sj_h = spikingjelly_lif(x, tau, threshold, reset, decay_input)
        for backend in ("reference", "fused"):
            neuron = make_neuron(
                "lif", tau=tau, threshold=threshold, reset=reset, decay_input=decay_input, backend=backend
            )
            spikes, h = neuron.run(x)
            assert torch.equal(spikes, sj_spikes), (backend, seed)
            assert torch.equal(h, sj_h), (backend, seed)
            theta = torch.tensor(threshold, dtype=torch.float32)
            v = spikes * 0.0 + (1.0 - spikes) * h if reset == "zero" else h - spikes * theta
            assert torch.equal(v, sj_v), (backend, seed)
        compared += x.numel()
        fired += int(sj_spikes.sum())
    assert 0.02 < fired / compared < 0.6  # neither silent nor saturated


def test_snntorch_form_differs_from_spikingjelly_on_these_inputs():
    """The inputs above can tell the two forms apart: the β-form's membranes differ from
    SpikingJelly's in a large share of values (so the equalities above are not vacuous)."""
    x = torch.randn(8, 4, 300, generator=torch.Generator().manual_seed(0)) * 1.5
    _, _, sj_h = spikingjelly_lif(x, 2.0, 1.0, "zero")
    _, h = make_neuron("lif", tau=2.0, form="snntorch").run(x)
    assert (h != sj_h).float().mean() > 0.1
    torch.testing.assert_close(h, sj_h, rtol=0, atol=1e-6)  # ... by rounding only


def test_lif_gradient_follows_spikingjelly():
    """dL/dX of our LIF (reference autograd and the fused backward) against SpikingJelly's LIFNode
    (detach_reset, Sigmoid(4)): same graph, surrogate formulas that round differently."""
    from spikingjelly.activation_based import neuron, surrogate

    x = torch.randn(6, 3, 200, generator=torch.Generator().manual_seed(3)) * 1.5
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    for reset, tau in (("zero", 2.0), ("subtract", 1.5)):
        sj = neuron.LIFNode(
            tau=tau,
            v_threshold=1.0,
            v_reset=0.0 if reset == "zero" else None,
            detach_reset=True,
            surrogate_function=surrogate.Sigmoid(alpha=4.0),
            step_mode="m",
        )
        xs = x.clone().requires_grad_()
        (sj(xs) * w).sum().backward()
        for backend in ("reference", "fused"):
            xo = x.clone().requires_grad_()
            (make_neuron("lif", tau=tau, reset=reset, backend=backend)(xo) * w).sum().backward()
            torch.testing.assert_close(xo.grad, xs.grad, rtol=1e-5, atol=1e-6)
        assert xs.grad.abs().sum() > 0


def test_official_models_use_the_spikingjelly_form():
    """Every LIF of the seed-sized models is the SpikingJelly form (the default of NeuronConfig);
    snnTorch semantics are one setting away, and a config saved before ``form`` existed loads as
    SpikingJelly form with unchanged parameters and buffers."""
    from qkf_snn.models import create_model

    torch.manual_seed(0)
    model = create_model("qkf_av_tiny", num_classes=5)
    lifs = [m for m in model.modules() if isinstance(m, LIF)]
    assert len(lifs) > 20 and all(m.form == "spikingjelly" for m in lifs)
    old = NeuronConfig().to_dict()
    del old["form"]  # a checkpoint's config from before this setting
    assert NeuronConfig.from_dict(old).build().form == "spikingjelly"
    torch.manual_seed(0)
    beta_form = create_model("qkf_av_tiny", num_classes=5, neuron={"form": "snntorch"})
    assert {m.form for m in beta_form.modules() if isinstance(m, LIF)} == {"snntorch"}
    a, b = model.state_dict(), beta_form.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    beta_form.load_state_dict(a)  # the same checkpoint loads into either form


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


@pytest.mark.parametrize("name", surrogate_names())
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
        (lambda: make_neuron("lif", form="norse"), "unknown LIF form 'norse'"),
        (lambda: make_neuron("lif", beta=1.0), "no finite tau in the spikingjelly form"),
        (lambda: make_neuron("lif", learn_beta=True), "a learned beta needs form 'snntorch'"),
        (lambda: NeuronConfig(kind="if", form="snntorch").build(), "applies to kind 'lif' only"),
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


def test_cli_names_a_bad_neuron_form(tmp_path):
    """Through the installed console script: a wrong form is one line naming the key, exit 2."""
    qkf = Path(sys.executable).parent / "qkf"
    proc = subprocess.run(
        [str(qkf), "train", "crema", "--data", str(tmp_path), "--set", "model.neuron.form=beta"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    out = (proc.stdout + proc.stderr).strip().splitlines()
    assert out == ["error: model.neuron.form: unknown value 'beta'; choose spikingjelly or snntorch"]
