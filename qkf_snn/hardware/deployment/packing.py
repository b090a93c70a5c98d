"""Layer-to-core packing: how many cores a graph needs on a platform. One packer per rule.

- ``per_layer`` (Loihi 2, SpiNNaker 2, TrueNorth): layers never share a core; a layer takes
  ``max(ceil(neurons / neurons_per_core), ceil(weight_bytes / synapse_bytes_per_core))`` cores
  (each term only where the platform documents the limit). Weights are counted once per synapse
  at the graph's measured width (float32 as 4 bytes): conv weight sharing is not exploited, so
  for convolutions this is what a synapse-list mapper stores, not a kernel-sharing one.
- ``dynapcnn`` (Speck): one layer per core (a DYNAP-CNN core runs one conv + IF layer); each layer's
  kernel and neuron memory by Sinabs' ``memory_summary`` formulas must fit the core it gets; the
  assignment is an exact maximum matching of layers to the 9 heterogeneous cores.
- ``single_array`` (Xylo): one neuron array of ``neurons_per_core`` hidden and ``outputs_per_core``
  output neurons; arrays needed = ``max(ceil(hidden / 1000), ceil(outputs / 8), 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from qkf_snn.hardware.deployment.analysis import GraphFacts, Layer
from qkf_snn.hardware.deployment.platforms import Packing


@dataclass
class PackedLayer:
    name: str
    neurons: int
    synapses: int
    cores: int
    detail: str = ""


@dataclass
class PackingResult:
    rule: str
    cores: int
    layers: list[PackedLayer]
    unplaced: int = 0  # dynapcnn: layers that fit no free core
    notes: list[str] = field(default_factory=list)


def _ceil(a: float, b: int | None) -> int:
    return math.ceil(a / b) if b else 0


def per_layer(facts: GraphFacts, p: Packing) -> PackingResult:
    rows = []
    for layer in facts.layers:
        cores = max(
            _ceil(layer.neurons, p.neurons_per_core), _ceil(layer.weight_bytes, p.synapse_bytes_per_core)
        )
        cores = max(cores, 1 if layer.neurons or layer.synapses else 0)
        rows.append(
            PackedLayer(
                layer.name, layer.neurons, layer.synapses, cores, f"{layer.weight_bytes:,.0f} B weights"
            )
        )
    return PackingResult("per_layer", sum(r.cores for r in rows), rows)


def _pow2_log(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def dynapcnn_memory(layer: Layer) -> tuple[int, int]:
    """(kernel, neuron) memory entries of a layer, by Sinabs' DynapcnnLayer.memory_summary:
    kernel = c_in · 2^(⌈log2(kh·kw)⌉ + ⌈log2 c_out⌉), neuron = c · 2^(⌈log2 h⌉ + ⌈log2 w⌉)."""
    kernel = sum(
        k.in_channels * 2 ** (_pow2_log(k.kh * k.kw) + _pow2_log(k.out_channels)) for k in layer.kernels
    )
    shape = list(layer.shape) + [1] * (3 - len(layer.shape))
    c, h, w = shape[0], shape[1], shape[2]
    return kernel, c * 2 ** (_pow2_log(h) + _pow2_log(w))


def _max_matching(fits: list[list[int]], n_cores: int) -> dict[int, int]:
    """Kuhn's augmenting paths: layer index -> core index, as many layers as can be placed."""
    core_of: dict[int, int] = {}
    layer_on: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for c in fits[i]:
            if c in seen:
                continue
            seen.add(c)
            if c not in layer_on or augment(layer_on[c], seen):
                layer_on[c], core_of[i] = i, c
                return True
        return False

    for i in range(len(fits)):
        augment(i, set())
    return {i: c for c, i in layer_on.items()}


def dynapcnn(facts: GraphFacts, p: Packing) -> PackingResult:
    mems = [dynapcnn_memory(layer) for layer in facts.layers]
    fits = [[c for c, (km, nm) in enumerate(p.core_memories) if k <= km and n <= nm] for k, n in mems]
    placed = _max_matching(fits, len(p.core_memories))
    rows = []
    for i, (layer, (k, n)) in enumerate(zip(facts.layers, mems, strict=True)):
        where = f"core {placed[i]}" if i in placed else "fits no free core"
        rows.append(
            PackedLayer(layer.name, layer.neurons, layer.synapses, 1, f"kernel {k:,}, neuron {n:,}: {where}")
        )
    return PackingResult("dynapcnn", len(rows), rows, unplaced=len(rows) - len(placed))


def single_array(facts: GraphFacts, p: Packing) -> PackingResult:
    arrays = max(
        _ceil(facts.hidden_neurons, p.neurons_per_core), _ceil(facts.output_neurons, p.outputs_per_core), 1
    )
    rows = [PackedLayer(layer.name, layer.neurons, layer.synapses, 0) for layer in facts.layers]
    return PackingResult("single_array", arrays, rows)


PACKERS: dict[str, Callable[[GraphFacts, Packing], PackingResult]] = {
    "per_layer": per_layer,
    "dynapcnn": dynapcnn,
    "single_array": single_array,
}


def pack(facts: GraphFacts, p: Packing) -> PackingResult:
    return PACKERS[p.rule](facts, p)
