"""The energy loss term on a toy network: the penalty's scale, the budget's Lagrange multiplier
(rises while over, decays to 0 and stays there once under), its state, and the config's terms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qkf_snn.errors import UserError
from qkf_snn.hardware.profile.term import EnergyTerm, energy_terms
from qkf_snn.models.neurons import make_neuron
from qkf_snn.training.config import compose


class Toy(nn.Module):
    """Gain → LIF (encoder) → Linear → LIF → Linear over T steps: both synaptic layers read spikes,
    so the energy has no floor that training cannot move."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(8))
        self.enc, self.fc1 = make_neuron("lif", tau=2.0), nn.Linear(8, 32)
        self.lif, self.fc2 = make_neuron("lif", tau=2.0), nn.Linear(32, 3)

    def forward_all(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"].transpose(0, 1)  # [B, T, F] -> [T, B, F]
        return {"logits": self.fc2(self.lif(self.fc1(self.enc(x * self.gain)))).mean(0)}


def _setup(**kwargs):
    torch.manual_seed(3)
    model = Toy()
    with torch.no_grad():
        model.fc1.bias += 0.8  # a busy network, so that there is energy to save
    batch = {"x": torch.rand(6, 4, 8) * 3, "label": torch.randint(0, 3, (6,))}
    term = EnergyTerm("h45_fp32_exact", **kwargs)
    term.attach(model)
    return model, batch, term


def _step(model, batch, term):
    out = model.forward_all(batch)
    return term(out, batch)


def test_the_penalty_is_lambda_at_the_first_step_and_scales_with_energy():
    model, batch, term = _setup(weight=0.3)
    loss, scalars = _step(model, batch, term)
    assert term.reference_pj == pytest.approx(scalars["energy_uJ"] * 1e6)
    assert loss.item() == pytest.approx(0.3, rel=1e-6)  # λ · E / E_ref with E = E_ref
    assert set(scalars) == {"energy_uJ"} and term.state_dict()["multiplier"] == 0.0


def test_the_multiplier_rises_while_over_budget_then_decays_to_zero_and_stays():
    model, batch, term = _setup(budget_pj=1.0, multiplier_lr=0.1)  # budget fixed below
    _, first = _step(model, batch, term)
    energy = first["energy_uJ"] * 1e6
    term.budget_pj, term.multiplier = energy / 2, 0.0  # 2x over budget: +0.1 per step
    seen = []
    for _ in range(5):
        loss, scalars = _step(model, batch, term)
        seen.append(scalars["energy_multiplier"])  # the multiplier this step's loss used
    assert seen == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4]) and term.multiplier == pytest.approx(0.5)
    assert loss.item() == pytest.approx(0.4 * (2 - 1), rel=1e-5)  # μ · (E/B − 1)
    term.budget_pj = energy * 4  # now under budget: −0.075 per step, projected onto μ ≥ 0
    for _ in range(8):
        _step(model, batch, term)
        seen.append(term.multiplier)
    assert seen[5:] == pytest.approx([0.425, 0.35, 0.275, 0.2, 0.125, 0.05, 0.0, 0.0])
    assert term.end_of_epoch({"epoch": 0}) == {"energy_multiplier": 0.0, "energy_budget_uJ": energy * 4 / 1e6}


def test_descending_on_the_budget_lagrangian_brings_the_energy_under_budget():
    model, batch, term = _setup(budget_pj=1.0, multiplier_lr=0.5)
    _, first = _step(model, batch, term)
    start = first["energy_uJ"] * 1e6
    term.budget_pj, term.multiplier = start * 0.6, 0.0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    energies, multipliers = [], []
    for _ in range(40):
        loss, scalars = _step(model, batch, term)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        energies.append(scalars["energy_uJ"] * 1e6)
        multipliers.append(term.multiplier)
    budget = term.budget_pj
    # μ rises exactly while the step's estimate is over budget, falls while under, ends at 0 and stays
    before = [0.0, *multipliers[:-1]]
    assert all(
        (m > b) == (e > budget) for e, m, b in zip(energies, multipliers, before, strict=True) if b > 0
    )
    assert energies[0] > budget > energies[-1] and max(multipliers) > 1 and multipliers[-10:] == [0.0] * 10


def test_state_round_trips():
    _, _, term = _setup(weight=0.1, budget_pj=5e6)
    term.multiplier, term.reference_pj, term.epoch = 0.1 + 0.2, 1234.5678, 7
    other = EnergyTerm("h45_fp32_exact", weight=0.1, budget_pj=5e6)
    other.load_state_dict(term.state_dict())
    assert (other.multiplier, other.reference_pj, other.epoch) == (0.1 + 0.2, 1234.5678, 7)
    other.load_state_dict({"multiplier": 0.5, "reference_pj": None})  # a state from before warm-ups
    assert (other.multiplier, other.reference_pj, other.epoch) == (0.5, None, 0)


def test_before_the_start_epoch_the_energy_is_logged_but_not_trained_on():
    model, batch, term = _setup(weight=0.3, budget_pj=1.0, start_epoch=2)  # 1 pJ: far over budget
    for epoch in range(2):
        loss, scalars = _step(model, batch, term)
        assert loss.item() == 0.0 and loss.grad_fn is None
        assert scalars["energy_uJ"] > 0 and scalars["energy_multiplier"] == 0.0
        assert (term.multiplier, term.reference_pj) == (0.0, None)
        assert term.end_of_epoch({"epoch": epoch})["energy_multiplier"] == 0.0
    loss, scalars = _step(model, batch, term)  # epoch 2: E_ref is this step's estimate
    assert term.reference_pj == pytest.approx(scalars["energy_uJ"] * 1e6)
    assert loss.item() == pytest.approx(0.3, rel=1e-6) and term.multiplier > 0  # μ was 0 for this step


def test_feasible_is_the_validation_energy_within_the_budget():
    _, _, term = _setup(budget_pj=5e6)
    assert term.constraint == "validation energy <= 5 uJ per sample (h45_fp32_exact)"
    assert [term.feasible({"energy_uJ": e}) for e in (4.999, 5.0, 5.001)] == [True, True, False]
    _, _, penalty = _setup(weight=0.1)
    assert penalty.feasible({"energy_uJ": 1e9}) is None and penalty.constraint is None


def test_the_config_asks_for_the_term():
    assert energy_terms(compose("crema", "av")) == []
    (term,) = energy_terms(compose("crema", "av", overrides={"energy.budget": "2.5uJ",
                                                              "energy.model": "platform_loihi"}))  # fmt: skip
    assert (term.budget_pj, term.weight, term.energy_model) == (2.5e6, 0.0, "platform_loihi")
    (term,) = energy_terms(compose("crema", "av", overrides={"energy.weight": 0.1, "energy.start_epoch": 4}))
    assert term.start_epoch == 4
    with pytest.raises(UserError, match="^energy.start_epoch: must be >= 0, got -1$"):
        compose("crema", "av", overrides={"energy.weight": 0.1, "energy.start_epoch": -1})
    with pytest.raises(UserError, match="^energy.model 'nope': unknown energy model; choose one of h45"):
        energy_terms(compose("crema", "av", overrides={"energy.model": "nope"}))
