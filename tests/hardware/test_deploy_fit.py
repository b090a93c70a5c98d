"""The preset that fits one Loihi 2 chip (qkf_audio_loihi2_deploy, benchmarks/fit_search.py): its float
export passes every Loihi 2 constraint except the weight width (the one value only quantization
decides), with the cores counted by hand; one more block, or the next width, fails the chip's
synapse count."""

from __future__ import annotations

import pytest
import torch

from qkf_snn.hardware.deployment import PLATFORMS, check_graph
from qkf_snn.hardware.nir.export import build_graph
from qkf_snn.models import create_model
from qkf_snn.models.quant import QuantSpec, quantize_model

PRESET = "qkf_audio_loihi2_deploy"
SYNAPSES_PER_CHIP = 120_000_000  # Loihi 2 brief, Table 1
NEURONS_PER_CORE = 8192


def _loihi2(weight_bits: int | None = None, **overrides):
    torch.manual_seed(0)
    model = create_model(PRESET, num_classes=6, **overrides).eval()  # the demo's 6 CREMA-D classes
    if weight_bits is not None:  # what `qkf export nir --weight-bits` exports
        model = quantize_model(model, QuantSpec(weight_bits))
    report = check_graph(build_graph(model), [PLATFORMS["loihi2"]])
    (platform,) = report.platforms
    return report.facts, platform, {c.name: c for c in platform.constraints}


def _only_weight_bits_fail(constraints) -> None:
    assert constraints["weight bits"].value == "float32" and constraints["weight bits"].passed is False
    rest = {name: c.passed for name, c in constraints.items() if name != "weight bits"}
    assert all(p is not False for p in rest.values()), rest


# Layers of the audio encoder with depths 1/1/3: stem (conv, pool, conv, pool, conv + shortcut) = 6,
# one Q-K block = 7 (Q, K, attention, mask, projection, fc1, fc2), a downsampling = 4 (conv, pool, conv,
# shortcut), and the read-out: 6 + 7 + 4 + 7 + 4 + 3 * 7 + 1 = 50 layers, one core each, plus a core per
# further 8,192 neurons in the layers wider than that (dims 80/160/320, MLP ratio 4, 32x32 input):
EXTRA_CORES = {
    "stem conv 1: 40 x 32 x 32 = 40,960 neurons": 5 - 1,
    "stem pool 1: 40 x 16 x 16 = 10,240": 2 - 1,
    "stem conv 2: 80 x 16 x 16 = 20,480": 3 - 1,
    "stage 1 MLP fc1: 320 x 8 x 8 = 20,480": 3 - 1,
    "stage 2 downsampling conv: 160 x 8 x 8 = 10,240": 2 - 1,
    "stage 2 MLP fc1: 640 x 4 x 4 = 10,240": 2 - 1,
}
CORES = 50 + sum(EXTRA_CORES.values())  # 61


def test_the_preset_passes_every_loihi2_constraint_but_the_float_weight_width():
    facts, loihi2, constraints = _loihi2()
    _only_weight_bits_fail(constraints)
    assert len(facts.layers) == 50
    assert loihi2.cores == CORES == 61 and constraints["cores"].limit == 128
    wide = sorted(layer.neurons for layer in facts.layers if layer.neurons > NEURONS_PER_CORE)
    assert wide == [10_240, 10_240, 10_240, 20_480, 20_480, 40_960]
    # the binding limit: 119,483,000 synapses per step of 120,000,000 (measured; docs/deployment.md)
    assert facts.synapses == constraints["synapses per chip"].value == 119_483_000 <= SYNAPSES_PER_CHIP


@pytest.mark.parametrize(
    "overrides,cores",
    [
        # one more stage-3 block: 7 more layers of at most 320 x 2 x 2 x 4 = 5,120 neurons, one core each
        ({"depths": (1, 1, 4)}, CORES + 7),
        # the next width of the search (E = 384): 384 x 2 x 2 ... and the wide layers grow
        ({"dims": (96, 192, 384)}, None),
    ],
)
def test_the_next_larger_configuration_exceeds_the_chips_synapses(overrides, cores):
    facts, loihi2, constraints = _loihi2(**overrides)
    failed = {name for name, c in constraints.items() if c.passed is False}
    assert failed == {"weight bits", "synapses per chip"}  # cores, neurons and the rest still fit
    assert facts.synapses > SYNAPSES_PER_CHIP
    if cores is not None:
        assert loihi2.cores == cores == 68


def test_the_preset_at_8_bits_passes_every_checked_loihi2_constraint():
    """The post-training 8-bit export: the weight width is 8 and the verdict PASS, on the same 61 cores;
    rounding to integers can only zero weights, so the synapses do not grow."""
    facts, loihi2, constraints = _loihi2(weight_bits=8)
    assert loihi2.verdict == "PASS" and loihi2.cores == CORES
    assert constraints["weight bits"].value == 8 and constraints["weight bits"].passed is True
    assert facts.synapses <= 119_483_000
