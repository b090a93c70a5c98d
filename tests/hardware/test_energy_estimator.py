"""The differentiable energy estimate of energy-aware training: the profiler's records and energy
models, recomputed from the forward pass with gradients. Exact agreement with `profile_model` on the
same batches for every energy model, gradients that lower the estimate, nothing counted twice."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from qkf_snn.errors import UserError
from qkf_snn.hardware.profile import counters, profile_model
from qkf_snn.hardware.profile.energy import ENERGY_MODELS, estimate_energy
from qkf_snn.hardware.profile.estimator import (
    ESTIMATED_FIELDS,
    PRICED_KINDS,
    TWINS,
    EnergyEstimator,
    check_energy_model,
    estimate_batch_energy,
)
from qkf_snn.models import create_model, recalibrate_bn


def forward(model, batch):
    return model.forward_all(batch)["logits"]


@pytest.fixture(scope="module")
def av():
    """A tiny AV model (QKTA, SSA, fusion head, integer residual stream) and two batches of
    different sizes with random-valued inputs."""
    torch.manual_seed(0)
    model = create_model("qkf_av_tiny", audio_input_size=(16, 16), video_input_size=(16, 16), time_steps=2)
    b1, b2 = model.example_batch(2), model.example_batch(3)
    b2 = {k: torch.rand_like(v) for k, v in b2.items()}
    recalibrate_bn(model, [b1, b2])
    model.eval()
    reference = profile_model(model, [b1, b2], forward=forward)
    est = EnergyEstimator(model, "h45_fp32_paper", forward=forward)
    est.calibrate(b1)
    est.begin_split()
    with est, torch.no_grad():
        for batch in (b1, b2):
            forward(model, batch)
    est.end_split()
    return model, (b1, b2), reference, est


def _same(a, b, where):
    if isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif dataclasses.is_dataclass(a):  # an operand: its max is a split-level maximum, not estimated
        for name in ("kind", "nonzero_share", "mean"):
            _same(getattr(a, name), getattr(b, name), f"{where}.{name}")
    elif isinstance(a, float):
        assert float(b) == pytest.approx(a, rel=1e-6, abs=1e-9), where  # float32 sums of real inputs
    else:
        assert a == b, where


def test_split_records_are_the_profilers_on_every_estimated_field(av):
    _, _, reference, est = av
    mine = est.split_profile()
    assert mine.samples == reference.samples == 5
    for kind, attr in (("synapse", "synapses"), ("product", "products"), ("neuron", "neurons")):
        ours, theirs = getattr(mine, attr), getattr(reference, attr)
        assert [r.name for r in ours] == [r.name for r in theirs] and theirs
        for a, b in zip(theirs, ours, strict=True):
            for name in ESTIMATED_FIELDS[kind]:
                _same(getattr(a, name), getattr(b, name), f"{a.name}.{name}")


@pytest.fixture(scope="module")
def graph(av):
    """One training-mode forward's sums, with their autograd graph, shared by every energy model."""
    model, (b1, _), _, est = av
    model.train()
    try:
        est.clear()
        with est:
            forward(model, b1)
            sums = est._named(est._pending)  # before the hooks go (detaching forgets the batch)
            est.clear()
    finally:
        model.eval()
    return sums, b1["audio"].shape[0]


@pytest.mark.parametrize("model_name", list(ENERGY_MODELS))
def test_every_energy_model_prices_the_split_as_the_profiler_does(av, graph, model_name):
    model, _, reference, est = av
    expected = estimate_energy(reference, models=[model_name])[model_name].total_pj
    priced = EnergyEstimator(model, model_name, forward=forward)
    priced.structure, priced.kinds, priced.time_steps = est.structure, est.kinds, est.time_steps
    assert priced.split_energy(est.split_sums()) == pytest.approx(expected, rel=1e-6)
    # and per batch, with gradients reaching the weights through the neurons' surrogates
    sums, samples = graph
    energy = priced.price_profile(priced.profile_of(sums, samples))
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(energy, params, retain_graph=True, allow_unused=True)
    norm = sum(float(g.abs().sum()) for g in grads if g is not None)
    assert energy.requires_grad and math.isfinite(energy.item()) and energy.item() > 0
    assert norm > 0 and math.isfinite(norm)


def test_the_energy_models_read_only_the_estimated_and_structural_fields(av):
    """Every other data field of the records is NaN here: no total changes, so the estimate needs
    nothing the twins do not recompute."""
    _, _, reference, est = av
    profile = est.split_profile()
    structural = {"name", "group", "cls", "op", "role", "input_kind", "kernel", "stride", "groups",
                  "fan_in", "out_channels", "weights", "bias", "time_steps", "neuron", "threshold",
                  "leak"}  # fmt: skip

    def poisoned(rec, kind):
        keep = structural | set(ESTIMATED_FIELDS[kind])
        changes = {f.name: math.nan for f in dataclasses.fields(rec) if f.name not in keep}
        lists = {k for k in changes if isinstance(getattr(rec, k), list | type(None))}
        changes.update(dict.fromkeys(lists))
        return dataclasses.replace(rec, **changes)

    bad = dataclasses.replace(
        profile,
        synapses=[poisoned(r, "synapse") for r in profile.synapses],
        products=[poisoned(r, "product") for r in profile.products],
        neurons=[poisoned(r, "neuron") for r in profile.neurons],
    )
    for name, fn in ENERGY_MODELS.items():
        assert fn(bad, est.options).total_pj == pytest.approx(fn(profile, est.options).total_pj), name


def test_every_priced_counting_rule_has_a_differentiable_twin():
    priced = {c.rule for c in counters.COUNTERS.values() if c.kind in PRICED_KINDS}
    assert priced and priced <= set(TWINS)


def test_a_batch_estimate_is_per_sample_and_equals_the_split_of_that_batch(av):
    model, (b1, b2), _, est = av
    with torch.no_grad():
        _, alone = estimate_batch_energy(est, b2)
        doubled = {k: torch.cat([v, v]) for k, v in b2.items()}
        _, twice = estimate_batch_energy(est, doubled)
    expected = estimate_energy(profile_model(model, [b2], forward=forward), models=["h45_fp32_paper"])
    assert float(alone) == pytest.approx(expected["h45_fp32_paper"].total_pj, rel=1e-6)
    assert float(twice) == pytest.approx(float(alone), rel=1e-6)


def test_a_gradient_step_on_the_estimate_lowers_it_and_the_spikes():
    torch.manual_seed(1)
    model = create_model("qkf_audio_tiny", input_size=(16, 16), time_steps=2)  # an encoder: model(x)
    batch = torch.rand(4, 2, 1, 16, 16)
    est = EnergyEstimator(model, "h45_fp32_exact")
    est.calibrate(batch)

    def measure():
        with torch.no_grad():
            est.begin_split()
            with est:
                model(batch)
            est.end_split()
            profile = est.split_profile()
        return est.split_energy(), sum(n.spikes for n in profile.neurons)

    model.train()  # measured with batch statistics too: the untrained running averages silence the net
    before, spikes_before = measure()
    _, energy = estimate_batch_energy(est, batch)
    (energy / energy.detach()).backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad.sign()  # one large step against the energy gradient
    after, spikes_after = measure()
    assert after < 0.9 * before and spikes_after < spikes_before


def test_an_unknown_energy_model_names_the_choices():
    with pytest.raises(UserError) as err:
        check_energy_model("h45_fp64", "--energy-model")
    assert str(err.value) == (
        f"--energy-model 'h45_fp64': unknown energy model; choose one of {', '.join(ENERGY_MODELS)}"
    )


def test_a_counted_layer_without_a_twin_is_refused_not_counted_as_zero():
    class Odd(nn.Linear):
        pass

    counters.register_counter(Odd, "synapse", lambda m, i, o: counters.CallStats())
    try:
        model = nn.Sequential()
        model.add_module("odd", Odd(2, 2))
        with pytest.raises(UserError, match=r"no differentiable twin .* odd \(Odd\)"):
            EnergyEstimator(model, "h45_fp32_exact").attach()
    finally:
        del counters.COUNTERS[Odd]
