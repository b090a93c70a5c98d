"""The energy section of the run config: one parser for typed energies, defaults that leave old runs
unchanged, one-line errors naming the key."""

from __future__ import annotations

import pytest

from qkf_snn.errors import UserError
from qkf_snn.training.config import DEFAULT_ENERGY_MODEL, EnergyConfig, TrainConfig, compose
from qkf_snn.units import format_energy, parse_energy


@pytest.mark.parametrize(
    ("text", "pj"),
    [("5uJ", 5e6), ("500nJ", 5e5), ("2.5µJ", 2.5e6), ("2.5μJ", 2.5e6), ("1e6pJ", 1e6), ("0.3 mJ", 3e8),
     (" 7.25e-1nJ ", 725.0), ("1J", 1e12), (".5uJ", 5e5)],
)  # fmt: skip
def test_energies_parse_to_picojoules(text, pj):
    assert parse_energy(text, "--energy-budget") == pytest.approx(pj, rel=1e-15)


@pytest.mark.parametrize(
    ("text", "why"),
    [("5", "not an energy"), ("5 parsecs", "not an energy"), ("uJ", "not an energy"),
     ("5kJ", "not an energy"), ("0uJ", "positive"), ("-1nJ", "positive"), ("1e400pJ", "positive, finite"),
     ("5uj", "not an energy")],
)  # fmt: skip
def test_bad_energies_are_one_line_naming_the_option(text, why):
    with pytest.raises(UserError, match=f"^--energy-budget {text!r}: .*{why}") as err:
        parse_energy(text, "--energy-budget")
    assert "\n" not in str(err.value)


def test_format_energy_reads_back():
    assert format_energy(5e6) == "5 µJ" and format_energy(725.0) == "725 pJ"
    assert format_energy(3e8) == "300 µJ"
    assert parse_energy(format_energy(1.234e7).replace(" ", ""), "x") == pytest.approx(1.234e7)


def test_defaults_are_plain_training_and_a_config_without_the_section_loads_so():
    cfg = TrainConfig()
    assert cfg.energy == EnergyConfig(0.0, None, DEFAULT_ENERGY_MODEL, 0.05) and not cfg.energy.active
    old = TrainConfig().to_dict()
    del old["energy"]  # a config.yaml / checkpoint written before the section existed
    loaded = TrainConfig.from_dict(old)
    assert loaded.energy == EnergyConfig() and loaded.energy.budget_pj is None


def test_overrides_set_the_section_and_it_round_trips():
    cfg = compose("crema", "av", overrides={"energy.weight": "0.5", "energy.budget": "2.5uJ",
                                             "energy.model": "platform_loihi"})  # fmt: skip
    assert cfg.energy.active and cfg.energy.weight == 0.5 and cfg.energy.budget_pj == 2.5e6
    assert TrainConfig.from_dict(cfg.to_dict()).energy == cfg.energy


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"energy.weight": -1}, "^energy.weight: must be >= 0, got -1.0$"),
     ({"energy.budget": "5 apples"}, "^energy.budget '5 apples': not an energy"),
     ({"energy.multiplier_lr": 0}, "^energy.multiplier_lr: must be > 0, got 0.0$"),
     ({"energy.model": ""}, "^energy.model: empty")],
)  # fmt: skip
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(UserError, match=message):
        compose("crema", "av", overrides=overrides)
