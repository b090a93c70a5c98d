"""The kind tracer: what each operation makes of its inputs' kinds (hardware/profile/kinds.py).
Values never matter: a binary tensor that no neuron emitted is real, a sum of spikes is integer
even where it holds no 2."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qkf_snn.hardware.profile.kinds import INTEGER, REAL, SPIKE, KindTracer


def test_propagation_follows_structure_not_values():
    torch.manual_seed(0)
    tracer = KindTracer(lambda: False)
    data = torch.rand(2, 4, 6)
    with tracer:
        binary = (data > 0.5).float()  # binary values, but not a neuron's output
        spikes = (torch.rand(2, 4, 6) > 0.7).float()
        tracer.mark(spikes, SPIKE)  # what the profiler does with a neuron's output
        other = (torch.rand(2, 4, 6) > 0.7).float()
        tracer.mark(other, SPIKE)
        stream = spikes + other  # the residual stream, whether or not a 2 appears in it
        kinds = {
            "data": data,
            "binary data": binary,
            "zeros": torch.zeros(2, 4, 6),
            "spikes": spikes,
            "reshape": spikes.reshape(8, 6),
            "flatten+transpose": spikes.flatten(0, 1).transpose(0, 1),
            "getitem": spikes[:, 1:],
            "chunk": spikes.chunk(2, dim=-1)[1],
            "max_pool": F.max_pool1d(spikes, 2),
            "float": spikes.float(),
            "spike + spike": stream,
            "stream + spike": stream + spikes,
            "builtin sum": sum([spikes, other]),
            "spike * spike": spikes * other,
            "stream * spike": stream * spikes,
            "spike * 2": spikes * 2,
            "spike * 0.125": spikes * 0.125,
            "spike + data": spikes + data,
            "matmul": spikes @ other.transpose(-1, -2),
            "sum": spikes.sum(-1, keepdim=True),
            "mean": spikes.mean(-1),
            "cat spikes": torch.cat([spikes, other]),
            "cat mixed": torch.cat([spikes, data]),
            "stack with stream": torch.stack([spikes, stream]),
            "conv": F.conv1d(spikes, torch.ones(3, 4, 1)),
        }
        in_place = spikes.clone()
        in_place.mul_(0.5)
        kinds["in-place * 0.5"] = in_place
        got = {name: tracer.kind(t) for name, t in kinds.items()}
    expected = {
        "data": REAL, "binary data": REAL, "zeros": REAL, "spikes": SPIKE, "reshape": SPIKE,
        "flatten+transpose": SPIKE, "getitem": SPIKE, "chunk": SPIKE, "max_pool": SPIKE, "float": SPIKE,
        "spike + spike": INTEGER, "stream + spike": INTEGER, "builtin sum": INTEGER,
        "spike * spike": SPIKE, "stream * spike": INTEGER, "spike * 2": INTEGER, "spike * 0.125": REAL,
        "spike + data": REAL, "matmul": INTEGER, "sum": INTEGER, "mean": REAL, "cat spikes": SPIKE,
        "cat mixed": REAL, "stack with stream": INTEGER, "conv": REAL, "in-place * 0.5": REAL,
    }  # fmt: skip
    assert got == expected


def test_tags_do_not_outlive_their_tensor():
    """A freed tensor's id is reused by the next tensor of its size: the weak reference tells them
    apart, so a new real tensor never inherits a dead spike tensor's tag."""
    tracer = KindTracer(lambda: False)
    spikes = torch.ones(3)
    tracer.mark(spikes, SPIKE)
    ident = id(spikes)
    del spikes
    fresh = torch.zeros(3)
    for _ in range(100):
        if id(fresh) == ident:
            break
        fresh = torch.zeros(3)
    assert id(fresh) == ident  # the id was reused (CPython reuses the freed slot)
    assert tracer.kind(fresh) == REAL
