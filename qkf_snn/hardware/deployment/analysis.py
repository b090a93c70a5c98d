"""What a NIR graph asks of a chip, measured from the file: the facts every platform is checked against.

Counting (per time step, per sample; neurons, synapses, fan-in and fan-out as in
:mod:`qkf_snn.hardware.nir.summary`, which this module builds on):

- a *layer* is a spiking node (LIF, IF, CubaLIF, Threshold) together with the synaptic nodes that
  feed it (through Flatten); synaptic nodes that reach no spiking node form one *read-out* layer
  whose units are the graph's Output (a chip holds them as non-spiking output neurons);
- a layer's *synapses* are those ending on its units (a conv: output units × kernel fan-in actually
  used, per source edge); its *destinations* the other layers its spikes reach;
- *weight bits*: the signed width of the largest integer weight magnitude over every synaptic node
  (``"float32"``, the dtype, when any weight is not an integer); *threshold bits* likewise over the
  neurons' thresholds. A quantized graph is measured from its own values, nothing is assumed;
- *nodes with more than one input*: nodes other than Output that sum several incoming edges
  (the residual stream, the attention's mask AND K); *max node inputs* the most edges one node sums;
- *neuron inputs not through a weight*: spiking nodes fed straight by a spiking node or an Input;
  *consecutive weights*: synaptic nodes fed by a synaptic node (looking through Flatten);
- ordering connectors of the portable target (zero convs, ``metadata["role"]``) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np

from qkf_snn.errors import UserError
from qkf_snn.hardware.nir.io import metadata
from qkf_snn.hardware.nir.nodes import SPIKING
from qkf_snn.hardware.nir.summary import SYNAPTIC, summarize

READOUT = "(read-out)"
_PASS_THROUGH = (nir.Flatten,)


@dataclass
class Kernel:
    """The weight geometry of one synaptic node, as a DYNAP-CNN core would store it."""

    out_channels: int
    in_channels: int  # per group, as stored
    kh: int
    kw: int


@dataclass
class Layer:
    name: str
    model: str  # NIR node type of the neuron, or READOUT
    shape: tuple[int, ...]
    neurons: int
    synapses: int
    weight_bytes: float  # synapses × weight bits / 8 (weights stored per synapse)
    fan_in: int
    fan_out: int
    destinations: int
    distinct_weights: int  # per neuron, summed over the feeding synaptic nodes
    kernels: list[Kernel] = field(default_factory=list)
    feeding: list[str] = field(default_factory=list)
    output: bool = False  # its units are the graph's output (spiking into Output, or the read-out)


@dataclass
class GraphFacts:
    layers: list[Layer]
    neurons: int  # spiking neurons + read-out units
    hidden_neurons: int  # neurons of the layers that are not output layers
    output_neurons: int  # units of the output layers (spiking into Output, or the read-out)
    input_channels: int
    synapses: int
    max_fan_in: int
    max_fan_out: int
    weight_bits: int | str
    threshold_bits: int | str
    neuron_models: tuple[str, ...]
    resets: tuple[str, ...]
    synaptic_types: tuple[str, ...]
    multi_input_nodes: int
    multi_input_names: list[str]
    max_node_inputs: int  # most incoming edges at one node (Output excluded)
    non_weight_neuron_inputs: int  # spiking nodes fed directly by a spiking node or Input
    consecutive_weights: int  # synaptic nodes fed by a synaptic node (through Flatten)
    max_destinations: int
    distinct_weights_per_neuron: int
    max_layer_neurons: int

    def measure(self, key: str):
        return getattr(self, key)


def _bits(arrays: list[np.ndarray]) -> int | str:
    """Signed width of the integers in ``arrays``; the dtype name when any value is not an integer."""
    values = [np.asarray(a).reshape(-1) for a in arrays if np.asarray(a).size]
    if not values:
        return 0
    for v in values:
        if not np.issubdtype(v.dtype, np.integer) and not np.array_equal(v, np.round(v)):
            return str(v.dtype)
    v = np.concatenate([x.astype(np.float64) for x in values])
    magnitude = int(np.abs(v).max())
    width = max(1, int(np.ceil(np.log2(magnitude + 1))))
    return width + 1 if (v < 0).any() else width


def _distinct_per_unit(node: nir.NIRNode) -> int:
    """Most distinct nonzero weights one output unit of ``node`` uses."""
    w = getattr(node, "weight", None)
    if w is None:
        return 1  # SumPool2d (weight 1) and Scale (one value per unit)
    w = np.asarray(w)
    rows = w.reshape(w.shape[0], -1)
    return max((len(np.unique(r[r != 0])) for r in rows), default=0)


def _kernel(node: nir.NIRNode) -> Kernel | None:
    """The stored kernel as Sinabs' memory formula reads it (the weight's own shape; an Affine is a
    1×1 kernel over its inputs). SumPool2d and Scale store none."""
    if isinstance(node, nir.Conv2d):
        return Kernel(*(int(d) for d in np.asarray(node.weight).shape))
    if isinstance(node, nir.Affine | nir.Linear):
        c_out, c_in = np.asarray(node.weight).shape
        return Kernel(int(c_out), int(c_in), 1, 1)
    return None


def _reset(node: nir.NIRNode) -> str | None:
    if isinstance(node, nir.Threshold):
        return None  # stateless comparator: nothing to reset
    v_reset = getattr(node, "v_reset", None)
    if v_reset is None:
        return "to 0"
    return "to 0" if not np.asarray(v_reset).any() else "to value"


def analyse(graph: nir.NIRGraph) -> GraphFacts:
    """The facts of ``graph`` that the platform constraints are checked against. Node types it does
    not know (Delay, Conv1d, LI, ...) are refused rather than left out of the counts."""
    nodes = graph.nodes
    known = SPIKING + SYNAPTIC + _PASS_THROUGH + (nir.Input, nir.Output)
    unknown = sorted({type(n).__name__ for n in nodes.values() if not isinstance(n, known)})
    if unknown:
        names = ", ".join(sorted({t.__name__ for t in known}))
        raise UserError(f"node type(s) {', '.join(unknown)} not analysed by deploy check (it knows {names})")
    ordering = {n for n, node in nodes.items() if "ordering" in str(metadata(node).get("role", ""))}
    edges = [(s, d) for s, d in graph.edges if s not in ordering and d not in ordering]
    into: dict[str, list[str]] = {n: [] for n in nodes}
    out_of: dict[str, list[str]] = {n: [] for n in nodes}
    for s, d in edges:
        into[d].append(s)
        out_of[s].append(d)
    summary = {r.name: r for r in summarize(graph).layers}
    spiking = [n for n, node in nodes.items() if isinstance(node, SPIKING)]

    def reached(name: str) -> set[str]:
        """Layers that a synaptic node's output reaches (through pass-through nodes)."""
        out: set[str] = set()
        for d in out_of[name]:
            node = nodes[d]
            if isinstance(node, SPIKING):
                out.add(d)
            elif isinstance(node, _PASS_THROUGH):
                out |= reached(d)
            elif isinstance(node, SYNAPTIC):
                out |= reached(d) or {READOUT}
            elif isinstance(node, nir.Output):
                out.add(READOUT)
        return out

    synaptic = [n for n, node in nodes.items() if isinstance(node, SYNAPTIC) and n not in ordering]
    feeds = {n: reached(n) for n in synaptic}
    weight_bits_of: dict[str, int | str] = {}
    layers: list[Layer] = []
    readout_nodes = [n for n in synaptic if not (feeds[n] - {READOUT})]

    def make(name: str, model: str, shape, neurons: int, own_synapses: int, feeding: list[str]) -> Layer:
        syn = own_synapses + sum(summary[f].synapses for f in feeding)
        wbytes = 0.0
        for f in feeding:
            bits = weight_bits_of.setdefault(f, _bits([_weights(nodes[f])]))
            wbytes += summary[f].synapses * (bits if isinstance(bits, int) else 32) / 8
        kernels = [k for f in feeding if (k := _kernel(nodes[f])) is not None]
        return Layer(
            name=name,
            model=model,
            shape=tuple(shape),
            neurons=neurons,
            synapses=syn,
            weight_bytes=wbytes,
            fan_in=0,
            fan_out=0,
            destinations=0,
            distinct_weights=sum(_distinct_per_unit(nodes[f]) for f in feeding) + (1 if own_synapses else 0),
            kernels=kernels,
            feeding=feeding,
        )

    for name in spiking:
        s = summary[name]
        feeding = [f for f in synaptic if name in feeds[f]]
        layer = make(name, type(nodes[name]).__name__, s.shape, s.neurons, s.synapses, feeding)
        layer.fan_in, layer.fan_out = s.fan_in, s.fan_out
        targets: set[str] = set()
        for d in out_of[name]:
            if isinstance(nodes[d], SPIKING):
                targets.add(d)
            elif isinstance(nodes[d], SYNAPTIC):
                targets |= feeds[d]
            elif isinstance(nodes[d], _PASS_THROUGH):
                targets |= reached(d)
            elif isinstance(nodes[d], nir.Output):
                layer.output = True
        layer.destinations = len(targets)
        layers.append(layer)
    output_units = sum(int(np.prod(_out_shape(nodes[n]))) for n in graph.outputs)
    if readout_nodes:
        layer = make(READOUT, READOUT, (output_units,), output_units, 0, readout_nodes)
        layer.fan_in = max(summary[f].fan_in for f in readout_nodes)
        layer.output = True
        layers.append(layer)

    weights = [_weights(nodes[n]) for n in synaptic]
    thresholds = [np.asarray(_threshold(nodes[n])) for n in spiking]
    neuron_models = tuple(sorted({type(nodes[n]).__name__ for n in spiking}))
    resets = tuple(sorted({r for n in spiking if (r := _reset(nodes[n]))}))
    io = (nir.Input, nir.Output)
    syn_types = tuple(
        sorted(
            {
                type(node).__name__
                for n, node in nodes.items()
                if n not in ordering and not isinstance(node, SPIKING + io)
            }
        )
    )
    multi = sorted(n for n in nodes if len(into[n]) > 1 and not isinstance(nodes[n], nir.Output))

    def sources(name: str) -> list[str]:  # incoming nodes, looking through pass-through nodes
        out: list[str] = []
        for src in into[name]:
            out += sources(src) if isinstance(nodes[src], _PASS_THROUGH) else [src]
        return out

    non_weight = [n for n in spiking if any(not isinstance(nodes[s], SYNAPTIC) for s in sources(n))]
    consecutive = [n for n in synaptic if any(isinstance(nodes[s], SYNAPTIC) for s in sources(n))]
    hidden = sum(layer.neurons for layer in layers if not layer.output)
    return GraphFacts(
        layers=layers,
        neurons=sum(layer.neurons for layer in layers),
        hidden_neurons=hidden,
        output_neurons=sum(layer.neurons for layer in layers if layer.output),
        input_channels=sum(int(np.prod(_out_shape(nodes[n]))) for n in graph.inputs),
        synapses=sum(layer.synapses for layer in layers),
        max_fan_in=max((layer.fan_in for layer in layers), default=0),
        max_fan_out=max((layer.fan_out for layer in layers), default=0),
        weight_bits=_bits(weights),
        threshold_bits=_bits(thresholds),
        neuron_models=neuron_models,
        resets=resets,
        synaptic_types=syn_types,
        multi_input_nodes=len(multi),
        multi_input_names=multi,
        max_node_inputs=max((len(into[n]) for n in nodes if not isinstance(nodes[n], nir.Output)), default=0),
        non_weight_neuron_inputs=len(non_weight),
        consecutive_weights=len(consecutive),
        max_destinations=max((layer.destinations for layer in layers), default=0),
        distinct_weights_per_neuron=max((layer.distinct_weights for layer in layers), default=0),
        max_layer_neurons=max((layer.neurons for layer in layers), default=0),
    )


def _weights(node: nir.NIRNode) -> np.ndarray:
    w = getattr(node, "weight", getattr(node, "scale", None))
    if w is None:  # SumPool2d: every synapse has weight 1
        return np.ones(1, dtype=np.int8)
    return np.asarray(w)


def _threshold(node: nir.NIRNode) -> np.ndarray:
    return np.asarray(getattr(node, "v_threshold", getattr(node, "threshold", np.zeros(0))))


def _out_shape(node: nir.NIRNode) -> tuple[int, ...]:
    t = node.output_type.get("output") if node.output_type else None
    if t is None and node.input_type:
        t = node.input_type.get("input")
    return tuple(int(s) for s in np.asarray(t).reshape(-1)) if t is not None else ()
