"""Paper convention by hand, its options, Spikformer's SSA formula, and the energy arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from qkf_snn.hardware.profile import (
    CONSTANTS,
    CountOptions,
    convention_totals,
    estimate_energy,
    layer_counts,
    profile_model,
)
from qkf_snn.hardware.profile.energy import break_even, energy_45nm, sram_access
from qkf_snn.hardware.profile.records import OperandRecord, ProductRecord, Profile, SynapseRecord
from qkf_snn.models.blocks import SpikingSelfAttention
from qkf_snn.models.neurons import NeuronConfig, make_neuron
from qkf_snn.models.utils import recalibrate_bn


class Hand(nn.Module):
    """conv 1→2 (3×3, pad 1) on a 4×4 map, an IF neuron, and a Linear head on 4 features.

    What the conv reads is decided by the model's structure: ``source="data"`` feeds it the data
    (real-valued, whatever the values), ``"spike"`` the spikes of an input IF neuron (θ = 0.5: a 1
    in the data is a spike at the same place), ``"integer"`` the sum of those spikes with themselves
    (an integer stream whose non-zeros are 2)."""

    def __init__(self, source: str = "spike") -> None:
        super().__init__()
        self.source = source
        self.enc = make_neuron("if", threshold=0.5)
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.lif = make_neuron("if", threshold=1.0)
        self.head = nn.Linear(4, 3)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["x"].transpose(0, 1)  # [T, B, 1, 4, 4]
        T, B = x.shape[:2]
        if self.source != "data":
            x = self.enc(x)
        if self.source == "integer":
            x = x + x
        spikes = self.lif(self.conv(x.flatten(0, 1)).reshape(T, B, 2, 4, 4))
        return self.head(batch["f"].transpose(0, 1)).mean(0) + spikes.sum()


def hand_batch(x_step0: torch.Tensor) -> dict[str, torch.Tensor]:
    """One sample, T = 2: ``x_step0`` at step 0, zeros at step 1; head features 0.5."""
    x = torch.zeros(1, 2, 1, 4, 4)
    x[0, 0, 0] = x_step0
    return {"x": x, "f": torch.full((1, 2, 4), 0.5)}


def spikes_8() -> torch.Tensor:
    """8 ones in 32 inputs (fr = 0.25): the 4 corners (fan-out 4) and the 4 centre pixels (9)."""
    m = torch.zeros(4, 4)
    m[0, 0] = m[0, 3] = m[3, 0] = m[3, 3] = 1
    m[1:3, 1:3] = 1
    return m


def counts_of(model, batch, options=CountOptions()):
    prof = profile_model(model, [batch], audit=False)
    return prof, {c.name: c for c in layer_counts(prof, options)}


def test_paper_convention_hand_computed():
    """fr = 8/32 = 0.25, T = 2, FLOPs = k²·H·W·C_in·C_out = 9·16·1·2 = 288 → SOP = 144 AC,
    E = 144 × 0.9 pJ = 129.6 pJ. Exact: corners reach 4 positions, centre pixels 9, ×2 filters:
    4·4·2 + 4·9·2 = 104 events (and 0 at step 1)."""
    prof, counts = counts_of(Hand(), hand_batch(spikes_8()))
    conv = next(s for s in prof.synapses if s.name == "conv")
    assert conv.role == "spike" and conv.input_nonzero_share == 0.25
    assert conv.dense_macs == 2 * 288
    assert counts["conv"].paper_ac == 144.0 and counts["conv"].paper_mac == 0.0
    assert counts["conv"].exact_ac == 104.0
    assert conv.events_per_step == [104.0, 0.0]
    energy = estimate_energy(prof, CountOptions(), ["h45_fp32_paper", "h45_fp32_exact"])
    assert energy["h45_fp32_paper"].per_layer["conv"] == pytest.approx(129.6)
    assert energy["h45_fp32_exact"].per_layer["conv"] == pytest.approx(93.6)
    # ANN twin: 288 MACs for the conv (one pass) and 12 for the head
    assert counts["conv"].ann_mac == 288 and counts["head"].ann_mac == 12


def test_first_layer_head_and_integer_options():
    real = torch.full((4, 4), 0.5)  # real-valued first step, zero second step
    _, c = counts_of(Hand("data"), hand_batch(real), CountOptions(first_layer="T", head="mac"))
    assert c["conv"].paper_mac == 576  # 288 FLOPs × T
    assert c["head"].paper_mac == 24 and c["head"].paper_ac == 0  # 4·3 per step × 2 steps
    _, c = counts_of(Hand("data"), hand_batch(real), CountOptions(first_layer="once", head="ac"))
    assert c["conv"].paper_mac == 288
    assert c["head"].paper_mac == 0 and c["head"].paper_ac == 24  # fr = 1
    assert c["conv"].exact_mac == 200  # 16 non-zero inputs: border-aware fan-out Σ = 100, × 2 filters
    # spikes + spikes: the same 8 positions with value 2 (mean 0.5, non-zero share 0.25)
    expected = {"ac_count": (0, 288), "ac_rate": (0, 144), "mac": (576, 0)}
    for mode, (mac, ac) in expected.items():
        prof, c = counts_of(Hand("integer"), hand_batch(spikes_8()), CountOptions(integer_inputs=mode))
        assert prof.synapses[0].role == "integer"
        assert (c["conv"].paper_mac, c["conv"].paper_ac) == (mac, ac)
        assert c["conv"].exact_ac == 208  # value-weighted: each 2 counts as two spikes


def test_option_errors_are_one_line():
    from qkf_snn.errors import UserError

    with pytest.raises(UserError, match=r"^--first-layer: 'twice' is not one of T, once$"):
        CountOptions(first_layer="twice")


def test_spikformer_ssa_formula():
    """Paper count of SSA's two products = T·H·N·d²·(min(fr_K, fr_V) + fr_Q), fr from the Q/K/V
    neurons' firing rates."""
    torch.manual_seed(1)
    attn = SpikingSelfAttention(16, 2, neuron=NeuronConfig())
    T, B, H, W = 2, 3, 3, 3
    x = torch.randint(0, 3, (B, T, 16, H, W)).float()  # batch-first integer stream

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = attn

        def forward(self, v):
            return self.attn(v.transpose(0, 1))

    model = recalibrate_bn(Wrap(), [x])
    prof = profile_model(model, [x], audit=False)
    assert prof.samples == B and prof.time_steps == T
    rate = {n.name.split(".")[1]: n.firing_rate for n in prof.neurons}
    counts = {c.name: c for c in layer_counts(prof, CountOptions())}
    heads, d, N = 2, 8, H * W
    formula = T * heads * N * d * d * (min(rate["k"], rate["v"]) + rate["q"])
    assert counts["attn.kv"].paper_ac + counts["attn.qkv"].paper_ac == pytest.approx(formula, rel=1e-12)
    # exact coincidences are never above the paper estimate's dense bound
    assert counts["attn.kv"].exact_ac <= T * heads * N * d * d


SPIKINGFORMER_LOG = Path(__file__).parent / "data" / "spikingformer_8_512_energy_log.json"


def _synapse(layer: dict, role: str, kind: str, rate: float) -> SynapseRecord:
    """A conv/linear of the published model as our profiler would record it: the paper FLOPs
    (k^d·H_out·W_out·C_in·C_out, no bias) × T, and the input firing rate the log measured."""
    flops = (
        layer["kernel"] ** (2 if layer["op"] == "Conv2d" else 1)
        * layer["positions"]
        * layer["in"]
        * layer["out"]
    )
    op = "linear" if layer["op"] == "Linear" else "conv"
    return SynapseRecord(
        layer["name"], "spikingformer", layer["op"], op, role, kind, [layer["kernel"]], [1], 1, 0,
        layer["out"], 0, layer["bias"], layer["steps"], 0.0, 0.0, float(flops * layer["steps"]), 0.0, rate,
        rate, 1.0, 0.0, 0.0, None, 0.0, 0.0, 0.0,
    )  # fmt: skip


def test_spikingformer_8_512_rebuilt_from_its_published_log():
    """Spikingformer-8-512's published energy (7.4635 mJ) rebuilt from the per-layer operation
    counts and firing rates of its energy log (tests/hardware/data, with source URL and commit),
    through our paper convention: per conv/linear the input firing rate × FLOPs × T, the stem conv
    and the head as MACs, SSA's Kᵀ·V at min(fr_K, fr_V) and Q·(KᵀV) at fr_Q. The only difference is
    the one docs/energy.md lists: the script's FLOPs include bias additions, the paper formula not."""
    log = json.loads(SPIKINGFORMER_LOG.read_text())
    m = log["model"]
    T, heads, dim, tokens = m["time_steps"], m["heads"], m["dim"], m["tokens"]
    synapses, bias_macs, bias_acs = [], 0.0, 0.0
    for i, layer in enumerate(log["layers"]):
        # Structure: the stem conv reads the image, the head the averaged features, the rest spikes.
        role, kind = (
            ("analog", "real")
            if i == 0
            else ("head", "real")
            if layer["name"] == "head"
            else ("spike", "spike")
        )
        rate = layer["acs"] / layer["ori_macs"] if role == "spike" else 1.0  # AC = fr × FLOPs in the log
        record = _synapse(layer, role, kind, rate)
        bias = layer["positions"] * layer["out"] * layer["steps"] if layer["bias"] else 0
        assert record.dense_macs + bias == layer["ori_macs"]  # our FLOPs + bias additions = the log's
        if role == "spike":
            bias_acs += rate * bias
        else:
            bias_macs += bias
        synapses.append(record)
    base = T * heads * tokens * (dim // heads) ** 2  # per product: T·H·N·d² (d = dim / heads)
    products = []
    for d, (fq, fk, fv) in enumerate(log["qkv_firing_rates"]):
        kv = [OperandRecord("spike", fk, fk, 1.0), OperandRecord("spike", fv, fv, 1.0)]
        qkv = [OperandRecord("spike", fq, fq, 1.0), OperandRecord("integer", 1.0, 1.0, 1.0)]
        for name, operands in (("kv", kv), ("qkv", qkv)):
            products.append(ProductRecord(f"block.{d}.attn.{name}", "spikingformer", "MatMul", "matmul",
                                          operands, T, float(base), 0.0, 0.0, None, 0.0))  # fmt: skip
    profile = Profile(
        "Spikingformer", samples=1, batches=1, time_steps=T, synapses=synapses, products=products
    )
    paper = convention_totals(profile, CountOptions(first_layer="T", head="mac"))["paper"]
    published = log["published"]
    assert paper["mac"] + bias_macs == published["g_macs"] * 1e9  # stem × T + head, exact integers
    assert paper["ac"] + bias_acs == pytest.approx(published["g_acs"] * 1e9, rel=1e-13)
    ours_mj = energy_45nm(paper["mac"], paper["ac"]) / 1e9
    assert energy_45nm(paper["mac"] + bias_macs, paper["ac"] + bias_acs) / 1e9 == pytest.approx(
        published["energy_mj"], rel=1e-13
    )
    assert round(published["energy_mj"], 2) == published["readme_energy_mj"]  # the README's 7.46 mJ
    assert ours_mj == pytest.approx(7.4590, abs=5e-5)  # without bias additions (docs/energy.md)
    # Kᵀ·V at min(fr_K, fr_V) of the whole validation split: the split-level part of the figure.
    assert paper["split_level_ac"] == pytest.approx(
        sum(base * min(fk, fv) for _, fk, fv in log["qkv_firing_rates"])
    )


def test_sram_constants_are_the_reference_code_values_not_the_fit():
    """docs/energy.md: h45.sram.* are the values of Lemaire et al.'s code (13.2 pJ, 1.09e-5 pJ/bit);
    a least-squares line through Horowitz's three SRAM points (8 KiB 10 pJ, 32 KiB 20 pJ, 1 MiB
    100 pJ per access) gives 13.26 pJ + 1.035e-5 pJ/bit."""
    bits = np.array([8 * 1024, 32 * 1024, 1024 * 1024], dtype=float) * 8
    slope, base = np.polyfit(bits, [10.0, 20.0, 100.0], 1)
    assert (round(base, 2), round(slope * 1e5, 3)) == (13.26, 1.035)
    assert (CONSTANTS["h45.sram.base"].value, CONSTANTS["h45.sram.slope"].value) == (13.2, 1.09e-5)


def test_energy_constants_arithmetic():
    assert energy_45nm(1, 1) == pytest.approx(5.5)  # 4.6 + 0.9
    assert energy_45nm(1, 1, "fp16") == pytest.approx(1.9)  # 1.5 + 0.4
    assert energy_45nm(1, 1, "int8") == pytest.approx(0.26)  # 0.23 + 0.03


def test_lemaire_hand_computed():
    """One spike-input conv: θ_in = 8 spikes, 104 events, k = 9, 18 weights, 32 potentials.
    ops 0.1·104; addressing (3.1+0.1)·2·8 + 0.1·8·9; memory 8·e(0) + 104·e(18) + 2·104·e(32),
    e(n) = 13.2 + 1.09e-5·n·32 pJ."""
    prof, _ = counts_of(Hand(), hand_batch(spikes_8()))
    result = estimate_energy(prof, CountOptions(), ["lemaire_int32"])["lemaire_int32"]

    def e(n):
        return 13.2 + 1.09e-5 * n * 32

    expected = 0.1 * 104 + (3.2 * 2 * 8 + 0.1 * 8 * 9) + (8 * e(0) + 104 * e(18) + 2 * 104 * e(32))
    assert result.per_layer["conv"] == pytest.approx(expected, rel=1e-12)
    assert sram_access(8 * 1024 // 4, 32) == pytest.approx(13.2 + 1.09e-5 * 65536)


def test_platform_and_break_even():
    prof, counts = counts_of(Hand(), hand_batch(spikes_8()))
    loihi = estimate_energy(prof, CountOptions(), ["platform_loihi"])["platform_loihi"]
    events = sum(c.exact_ac + c.exact_mac for c in counts.values())
    expected = events * 23.6 + sum(
        n.active_updates * 81 + (n.membrane_updates - n.active_updates) * 52 + n.spikes * 1.7
        for n in prof.neurons
    )
    assert loihi.total_pj == pytest.approx(expected)
    verdicts = {(b["source"], b["verdict"]) for b in break_even(0.5, 0.1)}
    assert ("Davidson & Furber 2021", "below") in verdicts
    assert ("Dampfhoffer et al., IEEE TETCI 2023", "within") in verdicts
    assert ("Yan et al. 2024, arXiv 2409.08290", "above") in verdicts


def test_convention_totals_add_up():
    prof, counts = counts_of(Hand(), hand_batch(spikes_8()))
    totals = convention_totals(prof, CountOptions())
    assert totals["exact"]["ac"] == sum(c.exact_ac for c in counts.values())
    assert totals["paper"]["mac"] == sum(c.paper_mac for c in counts.values())
    assert totals["neurobench"]["dense"] == sum(s.valid_connections for s in prof.synapses)
