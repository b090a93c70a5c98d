"""Our counts against SpikingJelly 2.0's SynOpCounter and NeuroBench 2.3's SynapticOperations on the
same model and input: equal where the definitions match, the documented difference elsewhere
(docs/energy.md, "Other tools"). The tools decide spike or not per call, so their numbers depend on
the batch; ours are the tools' numbers with one clip per call, so the tools run one clip at a time."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qkf_snn.hardware.profile import CountOptions, convention_totals, profile_model
from qkf_snn.models import create_model, make_neuron, recalibrate_bn

B = 3


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = create_model("qkf_video_tiny", input_size=(32, 32), time_steps=2, num_classes=5)
    x = torch.rand(B, 2, 3, 32, 32)
    recalibrate_bn(model, [x])
    return model, x, profile_model(model, [x])


def test_spikingjelly_synops(case):
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter

    model, x, prof = case
    records: dict[str, float] = {}
    total = 0.0
    for b in range(B):  # one clip per call
        counter = SynOpCounter()
        with torch.no_grad(), DispatchCounterMode([counter]):
            model(x[b : b + 1])
        for name, ops in counter.get_counts().items():
            records[name] = records.get(name, 0.0) + sum(ops.values())
        total += counter.get_total() / B

    def sj(name: str) -> float:  # per sample
        return records.get(f"QKFormer.{name}", 0.0) / B

    # Equal by definition: conv/linear on {0,1} inputs, and spike × spike products.
    for s in prof.synapses:
        assert sj(s.name) == pytest.approx(s.spikingjelly_synops, rel=1e-12, abs=1e-9)
        if s.input_kind == "spike":
            assert sj(s.name) == pytest.approx(s.events_value, rel=1e-12)
        elif s.input_kind == "real":  # documented: real inputs are not synaptic ops to SpikingJelly
            assert sj(s.name) == 0 and s.events_value > 0
        else:  # integer stream: counted (once per non-zero) only for a clip whose call held no 2
            assert sj(s.name) < s.events_value
    products = {p.name: p for p in prof.products}
    kv, qkv = products["stages.2.blocks.0.attn.kv"], products["stages.2.blocks.0.attn.qkv"]
    assert sj(kv.name) == pytest.approx(kv.events_value)  # Kᵀ·V: AND coincidences
    # Q·(KᵀV): SpikingJelly charges nnz(Q) × d (a Q spike reads a whole row of KᵀV); we count the
    # value-weighted coincidences Σ Q·(KᵀV).
    assert sj(qkv.name) == pytest.approx(qkv.spikingjelly_synops)
    assert qkv.operands[1].kind == "integer" and qkv.events_value < sj(qkv.name)
    for name in ("stages.0.blocks.0.attn.mask", "stages.0.blocks.0.attn.q_sum"):
        assert sj(name) == 0 and products[name].events_value > 0  # no aten rule for mul / sum
    ours = convention_totals(prof, CountOptions())
    assert total == pytest.approx(ours["spikingjelly"]["ac"], rel=1e-12)
    # The documented difference, term by term.
    extra = sum(s.events_value - sj(s.name) for s in prof.synapses if s.input_kind == "integer")
    extra += sum(p.events_value for p in prof.products if p.op != "matmul")
    extra += qkv.events_value - sj(qkv.name)
    assert ours["exact"]["ac"] == pytest.approx(total + extra, rel=1e-12)


def _neurobench(model: nn.Module, x: torch.Tensor) -> dict:
    """NeuroBench's per-sample averages, run one clip at a time."""
    pytest.importorskip("neurobench")
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel

    out: dict[str, float] = {}
    for b in range(x.shape[0]):
        wrapped = TorchModel(model)
        wrapped.register_hooks()
        metric = SynapticOperations()
        clip = x[b : b + 1]
        with torch.no_grad():
            preds = wrapped(clip)
        for key, value in metric(wrapped, preds, (clip, torch.zeros(1))).items():
            out[key] = out.get(key, 0.0) + value / x.shape[0]
        wrapped.cleanup_hooks()
    return out


def test_neurobench_synaptic_operations(case):
    model, x, prof = case
    nb = _neurobench(model, x)
    ours = convention_totals(prof, CountOptions())["neurobench"]
    assert nb["Effective_ACs"] == pytest.approx(ours["ac"], rel=1e-12)
    assert nb["Effective_MACs"] == pytest.approx(ours["mac"], rel=1e-12)
    assert nb["Dense"] == pytest.approx(ours["dense"], rel=1e-12)  # valid connections, no padding
    # Equal by definition: conv/linear on spikes = our exact events.
    spikes = [s for s in prof.synapses if s.input_kind == "spike"]
    integer = [s for s in prof.synapses if s.input_kind == "integer"]
    real = [s for s in prof.synapses if s.input_kind == "real"]
    assert nb["Effective_ACs"] == pytest.approx(
        sum(s.events_value for s in spikes) + sum(s.neurobench_ac for s in integer), rel=1e-12
    )
    # Documented: an integer-stream input is MACs to NeuroBench when the clip's call holds a 2 (else
    # ACs), counted once per non-zero input; we count ACs weighted by value (a 2 is two spikes).
    assert nb["Effective_MACs"] == pytest.approx(
        sum(s.events_nonzero for s in real) + sum(s.neurobench_mac for s in integer), rel=1e-12
    )
    assert all(s.neurobench_ac + s.neurobench_mac == s.events_nonzero for s in prof.synapses)
    assert sum(s.neurobench_mac for s in integer) > 0
    assert sum(s.events_value for s in integer) > sum(s.events_nonzero for s in integer)


class ZeroWeights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.lif = make_neuron("lif", tau=2.0, threshold=0.2)
        self.conv2 = nn.Conv2d(4, 3, 3, stride=2, padding=1, bias=False)
        with torch.no_grad():
            self.conv2.weight[torch.rand_like(self.conv2.weight) < 0.3] = 0.0  # pruned synapses

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, T, 2, 6, 6]
        T, B = x.shape[1], x.shape[0]
        h = self.conv1(x.transpose(0, 1).flatten(0, 1))
        s = self.lif(h.reshape(T, B, *h.shape[1:]))
        self.spikes = s.flatten(0, 1)
        return self.conv2(self.spikes)


def test_neurobench_skips_zero_weights_we_count_connections():
    """Documented difference: NeuroBench multiplies by the non-zero pattern of the weights; we
    count connections (structural zeros included). The gap is exactly the events landing on
    zero weights."""
    torch.manual_seed(2)
    model = ZeroWeights()
    x = torch.rand(2, 3, 2, 6, 6)
    nb = _neurobench(model, x)
    prof = profile_model(model, [x])  # last: model.spikes holds the whole batch's spikes
    conv2 = next(s for s in prof.synapses if s.name == "conv2")
    assert conv2.input_kind == "spike"
    on_zero = F.conv2d(model.spikes, (model.conv2.weight == 0).float(), stride=2, padding=1).sum() / 2
    assert on_zero > 0
    assert nb["Effective_ACs"] == pytest.approx(conv2.events_value - float(on_zero), rel=1e-12)
    assert nb["Effective_MACs"] == pytest.approx(prof.synapses[0].neurobench_mac, rel=1e-12)
