"""Profiling whole models: outputs unchanged, per-sample normalisation, counts that add up,
unattributed operators listed, single-step snnTorch models."""

from __future__ import annotations

import dataclasses

import pytest
import snntorch as snn
import torch
from torch import nn

from qkf_snn.hardware.profile import CountOptions, Profiler, build_report, profile_model
from qkf_snn.models import create_model, recalibrate_bn
from qkf_snn.models.fusion import FUSIONS


@pytest.fixture(scope="module")
def av():
    torch.manual_seed(0)
    model = create_model("qkf_av_tiny", audio_input_size=(32, 32), video_input_size=(32, 32), time_steps=2)
    batch = model.example_batch(2)
    recalibrate_bn(model, [batch])
    return model, batch


def test_profiling_does_not_change_outputs(av):
    model, batch = av
    with torch.no_grad():
        plain = model.forward_all(batch)
    with Profiler(model) as prof:
        profiled = prof.run(batch, forward=lambda m, b: m.forward_all(b), audit=True)
        again = prof.run(batch, forward=lambda m, b: m.forward_all(b))
    for key in plain:
        assert torch.equal(plain[key], profiled[key]) and torch.equal(plain[key], again[key])
    assert not model._forward_hooks and not model._forward_pre_hooks  # all hooks removed
    assert all(not m._forward_hooks for m in model.modules())


def _approx_equal(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _approx_equal(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _approx_equal(x, y)
    elif isinstance(a, float) and (a * 4).is_integer() and (b * 4).is_integer():
        assert a == b  # counts (per sample, of up to 4 samples) are exact
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-6)  # float32 sums of real-valued inputs
    else:
        assert a == b


def test_per_sample_means_divide_by_samples_not_batches(av):
    """One batch of 2, the same batch twice, and one batch of 4 (it twice) give the same
    per-sample numbers: totals are divided by samples seen."""
    model, batch = av
    once = profile_model(model, [batch]).to_dict()
    twice = profile_model(model, [batch, batch]).to_dict()
    doubled = {k: torch.cat([v, v]) for k, v in batch.items()}
    merged = profile_model(model, [doubled]).to_dict()
    assert (once["samples"], twice["samples"], merged["samples"]) == (2, 4, 4)
    assert (twice["batches"], merged["batches"]) == (2, 1)
    for doc in (twice, merged):
        for key in ("neurons", "synapses", "products", "others", "unattributed"):
            _approx_equal(once[key], doc[key])


def test_counts_add_up(av):
    model, batch = av
    prof = profile_model(model, [batch])
    T = prof.time_steps
    assert T == 2 and prof.samples == 2 and prof.audited
    for n in prof.neurons:
        assert sum(n.spikes_per_step) == pytest.approx(n.spikes)
        assert n.membrane_updates == T * n.neurons
        assert n.firing_rate == pytest.approx(n.spikes / (n.neurons * T))
        assert n.binary_output
    for s in prof.synapses:
        assert sum(s.events_per_step) == pytest.approx(s.events_value)
        assert s.events_nonzero <= s.events_value or s.input_kind == "real"
        assert s.valid_connections <= s.dense_macs
        assert s.time_steps == T
    doc = build_report(prof, CountOptions())
    groups = doc["groups"]
    assert set(groups) == {"audio", "video", "audio_head", "video_head", "fusion_head"}
    assert sum(g.get("spikes", 0.0) for g in groups.values()) == pytest.approx(
        doc["totals"]["per_sample"]["spikes"]
    )
    assert sum(g["exact_ac"] for g in groups.values()) == pytest.approx(
        doc["totals"]["conventions"]["exact"]["ac"]
    )
    per_step = doc["totals"]["per_step"]["spikes"]
    assert len(per_step) == T and sum(per_step) == pytest.approx(doc["totals"]["per_sample"]["spikes"])
    assert doc["totals"]["split"]["spikes"] == pytest.approx(2 * doc["totals"]["per_sample"]["spikes"])
    roles = {s.name.rsplit(".", 1)[0]: s.role for s in prof.synapses}
    assert roles["audio.stages.0.embed.layers.0"] == "analog"  # stem conv on real input
    assert roles["audio.stages.0.embed.layers.1"] == "spike"
    assert roles["audio.stages.0.blocks.0.attn.q"] == "integer"  # reads the residual stream
    assert {s.role for s in prof.synapses if s.op == "linear"} == {"head"}
    kinds = {o.kind for o in prof.others}
    assert {"batchnorm", "maxpool", "residual", "readout"} <= kinds
    assert prof.unattributed == []  # our blocks are fully attributed


def test_max_samples_and_train_mode_restored(av):
    model, batch = av
    model.train()
    try:
        prof = profile_model(model, [batch, batch], max_samples=3)
        assert prof.samples == 3 and prof.batches == 2
        assert model.training
    finally:
        model.eval()


class Custom(nn.Module):
    """Arithmetic outside any counted module and a layer with no counting rule."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 4, 1)
        self.norm = nn.LayerNorm(6)
        self.gate = nn.Parameter(torch.ones(4, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x))
        return torch.matmul(y * self.gate, y.transpose(1, 2)).relu()


def test_unattributed_operators_are_listed_by_name():
    prof = profile_model(Custom(), [torch.rand(3, 4, 6)])
    found = {(u.name, u.op) for u in prof.unattributed}
    assert ("model", "mul") in found and ("model", "matmul") in found and ("model", "relu") in found
    assert any(u.name == "norm" and u.reason == "module without a counting rule" for u in prof.unattributed)
    assert any(u.name == "model" and u.op == "(module)" for u in prof.unattributed)  # own parameter
    matmul = next(u for u in prof.unattributed if u.op == "matmul")
    assert matmul.calls == 1 and matmul.elements_per_sample == 24  # largest tensor [3, 4, 6] / 3 samples
    assert [s.name for s in prof.synapses] == ["conv"]


class SingleStep(nn.Module):
    """A plain snnTorch network called once per time step (the snnTorch tutorial style)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 6)
        self.lif1 = snn.Leaky(beta=0.9)
        self.fc2 = nn.Linear(6, 3)
        self.lif2 = snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor, mem1: torch.Tensor, mem2: torch.Tensor):
        spk1, mem1 = self.lif1(self.fc1(x), mem1)
        spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
        return spk2, mem1, mem2


def run_steps(model: SingleStep, x: torch.Tensor) -> torch.Tensor:
    """x [B, T, 8] -> output spikes [T, B, 3]."""
    mem1 = torch.zeros(x.shape[0], 6)
    mem2 = torch.zeros(x.shape[0], 3)
    out = []
    for t in range(x.shape[1]):
        spk, mem1, mem2 = model(x[:, t], mem1, mem2)
        out.append(spk)
    return torch.stack(out)


def test_single_step_snntorch_model():
    torch.manual_seed(3)
    model = SingleStep()
    x = torch.rand(5, 4, 8) * 2
    with torch.no_grad():
        expected = run_steps(model, x)
    with Profiler(model) as prof:
        out = prof.run(x, forward=run_steps)
    assert torch.equal(out, expected)
    p = prof.result()
    assert p.time_steps == 4 and p.samples == 5
    lif2 = next(n for n in p.neurons if n.name == "lif2")
    assert lif2.spikes_per_step == [float(expected[t].sum()) / 5 for t in range(4)]
    fc2 = next(s for s in p.synapses if s.name == "fc2")
    assert fc2.role == "spike" and fc2.time_steps == 4
    assert fc2.dense_macs == 4 * 6 * 3  # per sample: T × in × out


def test_records_are_plain_dataclasses(av):
    model, batch = av
    prof = profile_model(model, [batch])
    for record in prof.synapses[:1] + prof.neurons[:1]:
        assert dataclasses.is_dataclass(record)


@pytest.mark.parametrize("fusion", [f for f in FUSIONS if f != "concat"])
def test_every_fusion_is_fully_attributed(fusion):
    """Sum fusion and cross-modal Q-K fusion (its Sum module runs once per modality) are counted
    completely, with per-step splits that add up."""
    model = create_model(
        "qkf_av_tiny", fusion=fusion, audio_input_size=(32, 32), video_input_size=(32, 32), time_steps=2
    )
    batch = model.example_batch(1)
    recalibrate_bn(model, [batch])
    prof = profile_model(model, [batch])
    assert prof.unattributed == []
    for record in prof.products + prof.synapses:
        assert sum(record.events_per_step) == pytest.approx(record.events_value)
