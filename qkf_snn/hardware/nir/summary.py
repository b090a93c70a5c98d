"""What an exported graph asks of a neuromorphic back end: neurons, synapses, parameters, fan-in and
fan-out per layer, weight precision.

Counting conventions (per time step, per sample):

- *neurons*: units of spiking nodes (LIF, IF, Threshold).
- *synapses* of a synaptic node (Conv2d, SumPool2d, Affine, Linear, Scale): its nonzero connections
  (zero weights and padding excluded) times the number of edges into it: the summed residual
  stream reaches a conv from several spike sources, and each source needs its own synapses. An edge
  from a spiking node straight into another (K into the mask AND) is one synapse per unit, counted
  at the receiving node.
- *fan-in* of a unit: synapses ending on it; *fan-out*: synapses leaving it into the next nodes
  (linear read-out chains SumPool → Flatten → Affine are not composed).
- *params*: nonzero stored weights and biases (neuron constants are not counted).
- Ordering connectors of the ``portable``/``norse`` targets (zero convs, ``metadata["role"]``) count
  as nodes and edges but add no synapses, fan-in or fan-out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import nir
import numpy as np
import torch
import torch.nn.functional as F

from qkf_snn.hardware.nir.io import metadata
from qkf_snn.hardware.nir.nodes import SPIKING

SYNAPTIC = (nir.Conv2d, nir.SumPool2d, nir.Affine, nir.Linear, nir.Scale)


@dataclass
class LayerSummary:
    name: str
    op: str
    shape: tuple[int, ...]
    neurons: int = 0
    synapses: int = 0
    params: int = 0
    fan_in: int = 0  # maximum over the node's units
    fan_out: int = 0  # maximum over the node's units (per source unit, summed over consumers)
    precision: str = ""


@dataclass
class GraphSummary:
    layers: list[LayerSummary]
    nodes: int
    edges: int
    neurons: int
    synapses: int
    params: int
    max_fan_in: int
    max_fan_out: int
    dt: float | None
    time_steps: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def _shape(node: nir.NIRNode) -> tuple[int, ...]:
    t = node.output_type.get("output") if node.output_type else None
    if t is None and node.input_type:
        t = node.input_type.get("input")
    return tuple(int(s) for s in np.asarray(t).reshape(-1)) if t is not None else ()


def pair(v) -> tuple[int, int]:
    """A 2-D kernel / stride / padding as two ints, from an int, a pair or an array of either."""
    return tuple(int(a) for a in np.broadcast_to(np.asarray(v), (2,)))


def _mask_op(node: nir.NIRNode) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The node's connectivity as a linear map with 0/1 weights (no bias), or None if not synaptic."""
    if isinstance(node, nir.Conv2d):
        w = torch.from_numpy(np.asarray(node.weight) != 0).double()
        kw = dict(stride=pair(node.stride), padding=pair(node.padding), dilation=pair(node.dilation))
        return lambda x: F.conv2d(x, w, groups=int(node.groups), **kw)
    if isinstance(node, nir.SumPool2d):
        k, s, p = pair(node.kernel_size), pair(node.stride), pair(node.padding)
        return lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=True, divisor_override=1)
    if isinstance(node, nir.Affine | nir.Linear):
        w = torch.from_numpy(np.asarray(node.weight) != 0).double()
        return lambda x: x @ w.T
    if isinstance(node, nir.Scale):
        s = torch.from_numpy(np.asarray(node.scale) != 0).double()
        return lambda x: x * s
    return None


def _connectivity(node: nir.NIRNode, in_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Connections into each output unit and out of each input unit (one source edge)."""
    op = _mask_op(node)
    x = torch.ones(1, *in_shape, dtype=torch.float64, requires_grad=True)
    y = op(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    return y.detach()[0], grad[0]


def _precision(values: np.ndarray) -> str:
    v = np.asarray(values)
    if v.size == 0:
        return ""
    if np.isin(v, (0.0, 1.0)).all():
        return "binary {0,1}"
    if np.array_equal(v, np.round(v)):
        # in float64: abs(int8 -128) and 127 + 1 overflow an int8 array
        bits = int(np.ceil(np.log2(np.abs(v.astype(np.float64)).max() + 1))) + 1
        return f"int{bits}"
    return f"{v.dtype} ({len(np.unique(v))} distinct)"


def _params(node: nir.NIRNode) -> tuple[int, np.ndarray | None]:
    """Nonzero stored weights and biases (structural zeros, e.g. of the dense mask broadcast, are
    not parameters a back end has to hold), and the weights for the precision column."""
    weights = getattr(node, "weight", getattr(node, "scale", None))
    if weights is None:
        return 0, None
    weights = np.asarray(weights)
    bias = np.asarray(getattr(node, "bias", np.zeros(0)))
    return int(np.count_nonzero(weights) + np.count_nonzero(bias)), weights


def summarize(graph: nir.NIRGraph) -> GraphSummary:
    """Per-node and total resource counts of ``graph`` (see the module doc for the conventions)."""
    nodes = graph.nodes
    into: dict[str, list[str]] = {n: [] for n in nodes}
    out_of: dict[str, list[str]] = {n: [] for n in nodes}
    # Ordering connectors (zeros that only fix a depth-first executor's order) carry no synapses and
    # must not multiply the synapse sets of the node they feed.
    ordering = {n for n, node in nodes.items() if "ordering" in str(metadata(node).get("role", ""))}
    for src, dst in graph.edges:
        if src in ordering:
            continue
        into[dst].append(src)
        out_of[src].append(dst)
    shapes = {n: _shape(node) for n, node in nodes.items()}
    conn_in: dict[str, torch.Tensor] = {}  # synaptic node -> per output unit, all source edges
    conn_out: dict[str, torch.Tensor] = {}  # synaptic node -> per input unit, one source edge
    layers: dict[str, LayerSummary] = {}
    for name, node in nodes.items():
        layer = LayerSummary(name, type(node).__name__, shapes[name])
        if isinstance(node, SYNAPTIC) and into[name]:
            c_in, c_out = _connectivity(node, shapes[into[name][0]])
            conn_in[name], conn_out[name] = c_in * len(into[name]), c_out
            layer.synapses = int(conn_in[name].sum())
            layer.fan_in, layer.fan_out = int(conn_in[name].max()), int(c_out.max())
            layer.params, weights = _params(node)
            layer.precision = _precision(weights) if weights is not None else ""
        layers[name] = layer
    for name, node in nodes.items():
        if not isinstance(node, SPIKING):
            continue
        layer = layers[name]
        layer.neurons = int(np.prod(shapes[name]))
        fan_in = torch.zeros(shapes[name], dtype=torch.float64)
        for src in into[name]:
            if src in conn_in:
                fan_in += conn_in[src].reshape(shapes[name])
            else:  # spike source wired one-to-one: one synapse per unit
                fan_in += 1
                layer.synapses += layer.neurons
        fan_out = torch.zeros(shapes[name], dtype=torch.float64)
        targets = [d for d in out_of[name] if not isinstance(nodes[d], nir.Output)]  # graph boundary
        for dst in targets:
            fan_out += conn_out[dst].reshape(shapes[name]) if dst in conn_out else 1
        layer.fan_in, layer.fan_out = int(fan_in.max()), int(fan_out.max()) if targets else 0
    rows = list(layers.values())
    meta = metadata(graph)
    return GraphSummary(
        layers=rows,
        nodes=len(nodes),
        edges=len(graph.edges),
        neurons=sum(r.neurons for r in rows),
        synapses=sum(r.synapses for r in rows),
        params=sum(r.params for r in rows),
        max_fan_in=max((r.fan_in for r in rows), default=0),
        max_fan_out=max((r.fan_out for r in rows), default=0),
        dt=meta.get("dt"),
        time_steps=meta.get("time_steps"),
    )
