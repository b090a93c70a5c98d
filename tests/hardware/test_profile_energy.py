"""Every entry of the energy-model table (``ENERGY_MODELS``) on a real profile: its parts add up to its
total, it prices only layers the profile has, it names only constants of the table (each with a
source), and the report carries one row for it. A new model is one entry in ``energy.py``: it is
tested here without a line of its own."""

from __future__ import annotations

import math

import pytest
import torch

from qkf_snn.hardware.profile import CountOptions, markdown, profile_model
from qkf_snn.hardware.profile.energy import CONSTANTS, ENERGY_MODELS, estimate_energy
from qkf_snn.hardware.profile.report import build_report
from qkf_snn.models import create_model, recalibrate_bn

BASES = {"simulated", "measured", "all-in", "measured, all-in"}


@pytest.fixture(scope="module")
def profile():
    torch.manual_seed(0)
    kw = dict(num_classes=4, time_steps=2, audio_input_size=(16, 16), video_input_size=(16, 16))
    model = create_model("qkf_av_tiny", fusion="qk", fusion_stage=1, **kw)
    batch = {k: torch.rand_like(v) * 2 for k, v in model.example_batch(2).items()}
    recalibrate_bn(model, [batch])
    return profile_model(model, [batch])


@pytest.mark.parametrize("name", list(ENERGY_MODELS))
def test_every_energy_model_adds_up_and_cites_its_constants(name, profile):
    result = estimate_energy(profile, CountOptions(), [name])[name]
    layers = {r.name for r in (*profile.synapses, *profile.products, *profile.neurons)}
    assert result.total_pj > 0 and math.isfinite(result.total_pj)
    assert set(result.per_layer) <= layers and result.per_layer
    assert sum(result.per_layer.values()) == pytest.approx(result.total_pj, rel=1e-9)
    assert sum(result.components.values()) == pytest.approx(result.total_pj, rel=1e-9)
    assert result.basis in BASES and result.convention in ("paper", "exact") and result.title
    assert result.constants and all(CONSTANTS[k].source for k in result.constants)
    assert result.ann_total_pj is None or result.ann_total_pj > 0


def test_the_report_has_one_row_per_energy_model(profile):
    doc = build_report(profile)
    assert list(doc["energy"]["models"]) == list(ENERGY_MODELS)
    text = markdown(doc)
    for name, model in doc["energy"]["models"].items():
        assert f"`{name}` {model['title']}" in text
