"""Exact counts of the counting rules against brute-force enumeration on small layers."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from qkf_snn.hardware.profile.counters import (
    by_sample,
    conv_rule,
    conv_valid_connections,
    describe_neuron,
    find_counter,
    linear_rule,
    matmul_rule,
    mul_rule,
    multistep_neuron_rule,
    sum_rule,
)
from qkf_snn.models.blocks import MatMul, Mul, Sum
from qkf_snn.models.neurons import make_neuron


def _values(stats, samples: int = 1) -> dict[str, float]:
    """One call's scalars as the profiler reads them back, with the host-side post step applied
    to its sample rows split over ``samples`` samples."""
    values = {
        k: float(v) if isinstance(v, torch.Tensor) else v
        for section in (stats.add, stats.low, stats.high)
        for k, v in section.items()
    }
    if stats.post is not None:
        groups = {k: by_sample(v.tolist(), samples) for k, v in stats.samples.items()}
        values.update(stats.post(values, groups))
    return values


def _value(stats, key, samples: int = 1):
    return _values(stats, samples)[key]


def brute_conv_events(conv: nn.Module, x: torch.Tensor, weight_fn) -> float:
    """Σ over (sample, output position, filter, input channel of its group, kernel tap landing on
    a real input) of weight_fn(input value). Borders: zeros → the tap is skipped; replicate →
    the tap reads the clamped border input."""
    n, c_in, *spatial = x.shape
    d = len(spatial)
    k, s, p, dil = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    out_sizes = [(spatial[i] + 2 * p[i] - dil[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(d)]
    per_group_in = c_in // conv.groups
    per_group_out = conv.out_channels // conv.groups
    total = 0.0
    for b in range(n):
        for o in itertools.product(*[range(m) for m in out_sizes]):
            for tap in itertools.product(*[range(m) for m in k]):
                coord = [o[i] * s[i] + tap[i] * dil[i] - p[i] for i in range(d)]
                inside = all(0 <= coord[i] < spatial[i] for i in range(d))
                if not inside:
                    if conv.padding_mode == "zeros":
                        continue
                    coord = [min(max(coord[i], 0), spatial[i] - 1) for i in range(d)]
                for g in range(conv.groups):
                    for ci in range(g * per_group_in, (g + 1) * per_group_in):
                        total += weight_fn(float(x[(b, ci, *coord)])) * per_group_out
    return total


CONVS = [
    dict(dims=2, c_in=4, c_out=6, k=3, s=1, p=1, g=1),
    dict(dims=2, c_in=4, c_out=6, k=3, s=2, p=1, g=2),  # stride, groups, odd border
    dict(dims=2, c_in=4, c_out=4, k=1, s=2, p=0, g=1),  # strided 1×1 shortcut: skips inputs
    dict(dims=2, c_in=2, c_out=3, k=3, s=1, p=2, g=1, dil=2),
    dict(dims=2, c_in=2, c_out=3, k=5, s=3, p=2, g=1),
    dict(dims=2, c_in=2, c_out=3, k=3, s=1, p=1, g=1, mode="replicate"),
    dict(dims=1, c_in=4, c_out=5, k=1, s=1, p=0, g=1),  # the token projections (pointwise path)
    dict(dims=1, c_in=4, c_out=4, k=3, s=2, p=1, g=4),  # depthwise
]


@pytest.mark.parametrize("spec", CONVS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_conv_counts_equal_brute_force(spec):
    cls = nn.Conv1d if spec["dims"] == 1 else nn.Conv2d
    conv = cls(
        spec["c_in"], spec["c_out"], spec["k"], spec["s"], spec["p"], spec.get("dil", 1), spec["g"],
        bias=False, padding_mode=spec.get("mode", "zeros"),
    )  # fmt: skip
    shape = (3, spec["c_in"], 7) if spec["dims"] == 1 else (3, spec["c_in"], 7, 6)
    x = torch.randint(0, 4, shape).float() * (torch.rand(shape) < 0.4)  # integer stream, sparse
    y = conv(x)
    stats = conv_rule(conv, (x,), y)
    assert _value(stats, "events_value") == brute_conv_events(conv, x, abs)
    assert _value(stats, "events_nonzero") == brute_conv_events(conv, x, lambda v: float(v != 0))
    valid = brute_conv_events(conv, torch.ones(shape), lambda v: 1.0)
    assert stats.add["valid_connections"] == valid
    assert conv_valid_connections(conv, tuple(shape[2:])) * shape[0] == valid
    assert stats.add["dense_macs"] == y.numel() * conv.weight[0].numel()  # k²·C_in/g per output
    # per-row (sample·step) events add up to the total
    assert float(stats.rows["events_value"].sum()) == _value(stats, "events_value")


def test_conv_counts_real_input_and_padding_exclusion():
    """3×3 padded conv on a dense real input: every input reaches ≤ 9 positions; corners 4."""
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    x = torch.rand(1, 1, 4, 4) + 0.1
    stats = conv_rule(conv, (x,), conv(x))
    # fan-out per position of a 4×4 map: corners 4, edges 6, interior 9 -> 4·4 + 8·6 + 4·9 = 100
    assert _value(stats, "events_nonzero") == 100
    assert stats.add["valid_connections"] == 100
    assert stats.add["dense_macs"] == 16 * 9  # the paper FLOPs count padded taps


def test_linear_counts():
    lin = nn.Linear(7, 5)
    x = torch.randint(-2, 3, (2, 3, 7)).float()
    stats = linear_rule(lin, (x,), lin(x))
    assert _value(stats, "events_value") == float(x.abs().sum()) * 5
    assert _value(stats, "events_nonzero") == float((x != 0).sum()) * 5
    assert stats.add["dense_macs"] == 6 * 7 * 5
    assert stats.rows["events_value"].shape == (6,)


def test_mul_counts_and_coincidences():
    mask = (torch.rand(2, 3, 2, 1, 5) < 0.5).float()  # [T, B, h, 1, N] token mask
    k = (torch.rand(2, 3, 2, 4, 5) < 0.3).float()
    out = Mul()(mask, k)
    stats = mul_rule(Mul(), (mask, k), out)
    ands = sum(
        1
        for idx in itertools.product(*[range(s) for s in k.shape])
        if k[idx] == 1 and mask[idx[0], idx[1], idx[2], 0, idx[4]] == 1
    )
    assert _value(stats, "events_value") == ands
    assert _value(stats, "events_nonzero") == ands
    assert stats.add["dense_ops"] == k.numel()
    assert stats.rows["events_value"].tolist() == [float(out[t].sum()) for t in range(2)]


def test_matmul_counts_value_weighted_coincidences():
    a = torch.randint(0, 3, (2, 3, 4, 5)).float() * (torch.rand(2, 3, 4, 5) < 0.5)
    b = (torch.rand(2, 3, 5, 6) < 0.4).float()
    stats = matmul_rule(MatMul(), (a, b), a @ b)
    value = nonzero = 0.0
    for t, h, i, kk, j in itertools.product(range(2), range(3), range(4), range(5), range(6)):
        value += abs(float(a[t, h, i, kk])) * abs(float(b[t, h, kk, j]))
        nonzero += float(a[t, h, i, kk] != 0 and b[t, h, kk, j] != 0)
    assert _value(stats, "events_value") == value
    assert _value(stats, "events_nonzero") == nonzero
    assert stats.add["dense_ops"] == 2 * 3 * 4 * 5 * 6
    # SpikingJelly's rule: b binary, a not -> nnz(b) × n
    assert _value(stats, "spikingjelly_synops") == float((b != 0).sum()) * 4


def test_matmul_spike_times_spike_is_an_and_count():
    a = (torch.rand(3, 4, 5) < 0.5).float()
    b = (torch.rand(3, 5, 2) < 0.5).float()
    stats = matmul_rule(MatMul(), (a, b), a @ b)
    assert _value(stats, "events_value") == float((a @ b).sum())  # coincidences = Σ of the product
    assert _value(stats, "spikingjelly_synops") == float((a @ b).sum())


def test_sum_counts():
    q = (torch.rand(2, 3, 8, 5) < 0.3).float()
    stats = sum_rule(Sum(3), (q,), Sum(3)(q))
    assert _value(stats, "events_value") == float(q.sum())
    assert stats.add["dense_ops"] == q.numel()


def test_neuron_counts_per_step():
    lif = make_neuron("lif", tau=2.0)
    x = torch.randn(4, 3, 5, 6) * 3
    spikes = lif(x)
    stats = multistep_neuron_rule(lif, (x,), spikes)
    assert stats.rows["spikes"].tolist() == [float(spikes[t].sum()) for t in range(4)]
    assert stats.add["updates"] == 4 * 3 * 30  # T × B × neurons
    assert _value(stats, "active_updates") == float((x != 0).sum())
    info = describe_neuron(lif)
    assert info["leak"] and info["threshold"] == 1.0 and info["beta"] == 0.5
    assert not describe_neuron(make_neuron("if"))["leak"]


def test_tool_buckets_per_sample():
    """The tools decide per call: a single 2 anywhere makes a whole batch MAC to NeuroBench and 0
    to SpikingJelly. We decide per sample (as the tools would with one sample per call), so a
    sample's buckets do not depend on its batch-mates. Rows T·B merged: row r is sample r mod B."""
    conv = nn.Conv1d(3, 4, 1, bias=False)
    T, B = 2, 3
    x = (torch.rand(T * B, 3, 5) < 0.5).float()
    x[1, 0, 0] = x[B + 1, 2, 4] = 1.0  # sample 1 has spikes ...
    x[B + 1, 1, 1] = 2.0  # ... and, at step 1, one 2: only sample 1 reads non-binary values
    stats = conv_rule(conv, (x,), conv(x))
    per_sample = [conv_rule(conv, (x[b::B],), conv(x[b::B])) for b in range(B)]  # one sample a call
    for key in ("neurobench_ac", "neurobench_mac", "spikingjelly_synops"):
        assert _value(stats, key, B) == sum(_value(s, key) for s in per_sample)
    nz = [_value(s, "events_nonzero") for s in per_sample]
    assert _value(stats, "neurobench_mac", B) == nz[1] > 0
    assert _value(stats, "neurobench_ac", B) == nz[0] + nz[2]
    assert _value(stats, "neurobench_mac") == sum(nz)  # the whole call as one group: all MAC


def test_tool_buckets_per_call():
    """SpikingJelly counts only {0,1} inputs; NeuroBench calls {-1,0,1} inputs AC, others MAC."""
    conv = nn.Conv1d(3, 4, 1, bias=False)
    spikes = (torch.rand(2, 3, 5) < 0.5).float()
    integer = spikes * 2
    s = conv_rule(conv, (spikes,), conv(spikes))
    i = conv_rule(conv, (integer,), conv(integer))
    assert _value(s, "spikingjelly_synops") == _value(s, "events_nonzero") == _value(s, "neurobench_ac")
    assert _value(s, "neurobench_mac") == 0
    assert _value(i, "spikingjelly_synops") == 0 and _value(i, "neurobench_ac") == 0
    assert _value(i, "neurobench_mac") == _value(i, "events_nonzero")
    assert _value(i, "events_value") == 2 * _value(i, "events_nonzero")  # value-weighted


def test_registry_finds_subclasses():
    class MyConv(nn.Conv2d):
        pass

    assert find_counter(MyConv(1, 1, 1)).kind == "synapse"
    assert find_counter(make_neuron("if")).kind == "neuron"
    assert find_counter(nn.GELU()) is None
