"""Neuron mapping: NIR LIF/IF parameters give back exactly the model's β and input gain, and the Norse
cell built from them reproduces the model's neuron bit for bit (spikes and membranes), in either LIF
form (SpikingJelly's, the default, or snnTorch's)."""

from __future__ import annotations

import math

import nir
import numpy as np
import pytest
import torch

from qkf_snn.hardware.nir.nodes import discrete_params, neuron_problem, neuron_to_nir, recover
from qkf_snn.hardware.nir.norse_exec import node_map
from qkf_snn.models.neurons import make_neuron

NEURONS = {
    "lif_tau2": dict(kind="lif", tau=2.0),
    "lif_tau1.5": dict(kind="lif", tau=1.5),
    "lif_tau2_snntorch_form": dict(kind="lif", tau=2.0, form="snntorch"),
    "lif_tau3_snntorch_no_decay_input": dict(kind="lif", tau=3.0, decay_input=False, form="snntorch"),
    "lif_tau3_no_decay_input": dict(kind="lif", tau=3.0, decay_input=False),
    "lif_gt_attention": dict(kind="lif", tau=2.0, threshold=0.5, comparator="gt"),
    "lif_ge_attention": dict(kind="lif", tau=2.0, threshold=0.5),
    "plif": dict(kind="plif", init_tau=2.0),
    "if": dict(kind="if", threshold=1.0),
}


def _neuron(spec: dict):
    spec = dict(spec)
    neuron = make_neuron(spec.pop("kind"), **spec)
    if neuron.kind == "plif":  # a learned β that is not a round number
        with torch.no_grad():
            neuron.beta.fill_(0.7312345)
    return neuron


@pytest.mark.parametrize("dt", [1.0, 0.5, 1e-3, 1e-4])
@pytest.mark.parametrize("name", list(NEURONS))
def test_nir_parameters_recover_beta_and_gain_exactly(name, dt):
    neuron = _neuron(NEURONS[name])
    node = neuron_to_nir(neuron, (2, 3), dt)
    if dt in (1.0, 0.5):  # powers of two: plain float32 parameters suffice
        assert node.r.dtype == np.float32
    p = discrete_params(neuron)
    if neuron.kind == "if":
        assert isinstance(node, nir.IF)
        beta, gain = recover(None, node.r, dt)
    else:
        assert isinstance(node, nir.LIF)
        beta, gain = recover(node.tau, node.r, dt)
        assert (node.v_leak == 0).all()
    assert (beta == np.float32(p.beta)).all() and (gain == np.float32(p.gain)).all()
    assert (node.v_threshold == np.float32(neuron.threshold.item())).all()
    assert (node.v_reset == 0).all()
    assert node.metadata["dt"] == dt and node.metadata["comparator"] == neuron.comparator


def test_official_lif_maps_to_round_numbers_at_unit_dt():
    """τ = 2 time steps, r = 1: the SpikingJelly LIF of QKFormer reads as itself."""
    node = neuron_to_nir(_neuron(NEURONS["lif_tau2"]), (1,), 1.0)
    assert node.tau[0] == 2.0 and node.r[0] == 1.0
    # ">= 1" becomes "> nextafter(1, -inf)": NIR's comparator is strict.
    assert node.v_threshold[0] == np.nextafter(np.float32(1.0), np.float32(0.0))


@pytest.mark.parametrize("name", list(NEURONS))
def test_norse_cell_is_bit_identical_to_the_model_neuron(name):
    neuron = _neuron(NEURONS[name])
    T, shape = 24, (64, 5)
    # Integer counts (ties at threshold, as the attention neuron sees) mixed with analog values.
    x = torch.cat([torch.randint(0, 4, (T, *shape)).float(), torch.randn(T, *shape) * 1.5 + 0.4], dim=1)
    spikes, mem = neuron.run(x, record_mem=True)
    node = neuron_to_nir(neuron, tuple(x.shape[1:]), 1.0)
    cell = node_map(1.0)[type(node)](node)
    state, got = None, []
    for t in range(T):
        z, state = cell(x[t], state)
        got.append(z)
        # Norse keeps the post-reset membrane: the pre-reset U where no spike, 0 where one.
        assert torch.equal(state.v, torch.where(z.bool(), torch.zeros_like(mem[t]), mem[t]))
    assert torch.equal(torch.stack(got), spikes)
    assert 0 < spikes.sum() < spikes.numel()


def test_ge_comparator_fires_on_exact_threshold_hits():
    """One Q spike gives the attention neuron H = 0.5 = θ: it must fire in the graph too."""
    neuron = _neuron(NEURONS["lif_ge_attention"])
    node = neuron_to_nir(neuron, (1,), 1.0)
    cell = node_map(1.0)[nir.LIF](node)
    z, _ = cell(torch.ones(1, 1), None)  # U = 0.5 · 1
    assert z.item() == 1.0
    gt = neuron_to_nir(_neuron(NEURONS["lif_gt_attention"]), (1,), 1.0)
    z, _ = node_map(1.0)[nir.LIF](gt)(torch.ones(1, 1), None)
    assert z.item() == 0.0


@pytest.mark.parametrize(
    "spec,why",
    [
        (dict(kind="lif", reset="subtract"), "reset 'subtract'"),
        (dict(kind="lif", reset="none"), "reset 'none'"),
        (dict(kind="qif"), "QIF dynamics"),
    ],
)
def test_neurons_without_nir_form_are_named(spec, why):
    assert why in neuron_problem(_neuron(spec))


def test_supported_neurons_have_no_problem():
    for spec in NEURONS.values():
        assert neuron_problem(_neuron(spec)) is None


@torch.no_grad()
def test_box_cell_integrates_the_same_equation_with_other_rounding():
    """Norse's LIFBoxCell (v + dt/τ·(I − v)) is the same LIF: at τ = 2 it rounds exactly as the
    SpikingJelly form (· 0.5 and / 2 are the same operation), unlike snnTorch's β-form."""
    x = torch.randn(8, 4096) * 2
    differ = {}
    for name in ("lif_tau2", "lif_tau2_snntorch_form"):
        node = neuron_to_nir(_neuron(NEURONS[name]), (4096,), 1.0)
        exact, box = node_map(1.0, "exact")[nir.LIF](node), node_map(1.0, "box")[nir.LIF](node)
        s1 = s2 = None
        differ[name] = 0
        for t in range(8):
            _, s1 = exact(x[t], s1)
            _, s2 = box(x[t], s2)
            differ[name] += int((s1.v != s2.v).sum())
        assert math.isclose(float((s1.v - s2.v).abs().max()), 0.0, abs_tol=1e-5)
    assert differ == {"lif_tau2": 0, "lif_tau2_snntorch_form": differ["lif_tau2_snntorch_form"]}
    assert differ["lif_tau2_snntorch_form"] > 0
