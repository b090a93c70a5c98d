"""Resource summary: neurons, synapses (zero weights and padding excluded, one set per source edge),
parameters, fan-in/fan-out and weight precision, checked against counts worked out by hand."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from qkf_snn.hardware.nir import build_graph, node_id, summarize
from qkf_snn.models import create_model


def _graph() -> nir.NIRGraph:
    """input [1,4,4] → conv 3×3 pad 1 (2 channels, one weight zero) → two LIF populations, both summed
    into one sum-pool 2×2 → Threshold → output."""
    w = np.ones((2, 1, 3, 3), dtype=np.float32) * 0.5
    w[1, 0, 0, 0] = 0.0  # channel 1 loses its top-left tap
    full = lambda v: np.full((2, 4, 4), v, dtype=np.float32)  # noqa: E731
    lif = lambda: nir.LIF(tau=full(2), r=full(1), v_leak=full(0), v_threshold=full(1), v_reset=full(0))  # noqa: E731
    nodes = {
        "in": nir.Input(input_type={"input": np.array([1, 4, 4])}),
        "conv": nir.Conv2d(
            input_shape=(4, 4),
            weight=w,
            stride=1,
            padding=1,
            dilation=1,
            groups=1,
            bias=np.zeros(2, dtype=np.float32),
        ),
        "a": lif(),
        "b": lif(),
        "pool": nir.SumPool2d(
            kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
        ),
        "th": nir.Threshold(threshold=np.full((2, 2, 2), 0.5, dtype=np.float32)),
        "out": nir.Output(output_type={"output": np.array([2, 2, 2])}),
    }
    edges = [
        ("in", "conv"),
        ("conv", "a"),
        ("conv", "b"),
        ("a", "pool"),
        ("b", "pool"),
        ("pool", "th"),
        ("th", "out"),
    ]
    return nir.NIRGraph(nodes, edges)


def test_counts_by_hand():
    s = summarize(_graph())
    layers = {r.name: r for r in s.layers}
    # 3×3 pad 1 on 4×4: valid taps per position along one axis are 2, 3, 3, 2 → 10 × 10 = 100 per
    # channel; channel 1's top-left tap is missing wherever it would be valid: 3 × 3 = 9 positions.
    conv = layers["conv"]
    assert conv.synapses == 100 + 91
    assert conv.fan_in == 9 and conv.fan_out == 9 + 8  # centre input: all taps of ch 0, 8 of ch 1
    assert conv.params == 9 + 8 and conv.precision == "float32 (2 distinct)"
    # the pool has two source edges: 2 × (2 channels × 4 windows × 4 inputs)
    assert layers["pool"].synapses == 2 * 32 and layers["pool"].fan_in == 8 and layers["pool"].fan_out == 1
    assert layers["a"].neurons == 32 and layers["a"].fan_in == 9 and layers["a"].fan_out == 1
    assert layers["th"].neurons == 8 and layers["th"].fan_in == 8 and layers["th"].fan_out == 0
    assert s.neurons == 32 + 32 + 8 and s.synapses == 191 + 64
    assert s.max_fan_in == 9 and s.max_fan_out == 17 and s.nodes == 7 and s.edges == 7


def test_precision_labels():
    from qkf_snn.hardware.nir.summary import _precision

    assert _precision(np.array([0.0, 1.0, 1.0])) == "binary {0,1}"
    assert _precision(np.array([-3.0, 2.0, 0.0])) == "int3"
    # an int8 file's extremes: 127 + 1 overflows int8 arithmetic (it read as NaN bits before)
    assert _precision(np.array([-127, 5, 127], dtype=np.int8)) == "int8"
    assert _precision(np.array([0.25, -1.5], dtype=np.float32)) == "float32 (2 distinct)"


@pytest.fixture(scope="module")
def av_summary():
    model = create_model("qkf_av_tiny_deploy", input_size=(32, 32), num_classes=5)
    graph = build_graph(model, target="nir")  # the plain form: Threshold nodes, dt = 1
    return model, graph, summarize(graph)


def test_model_summary_adds_up(av_summary):
    model, graph, s = av_summary
    layers = {r.name: r for r in s.layers}
    spiking = [n for n, node in graph.nodes.items() if isinstance(node, nir.LIF | nir.Threshold)]
    assert s.neurons == sum(int(np.prod(graph.nodes[n].output_type["output"])) for n in spiking)
    assert s.synapses == sum(r.synapses for r in s.layers) and s.params == sum(r.params for r in s.layers)
    # a 1×1 conv reading the residual stream: one synapse set per spike source (3 sources here)
    fc1 = layers[node_id("audio.stages.0.blocks.0.mlp.fc1.conv")]
    c_in, c_out = model.audio.config.dims[0], fc1.shape[0]
    assert fc1.synapses == 3 * c_in * c_out * 8 * 8 and fc1.fan_in == 3 * c_in
    # the trained conv weights count fully; the structural ones only where they connect
    assert fc1.params == c_in * c_out + c_out and fc1.precision.startswith("float32")
    spread = layers[node_id("audio.stages.0.blocks.0.attn.mask_broadcast")]
    assert spread.precision == "binary {0,1}" and spread.params == spread.synapses == 16 * 8 * 8
    assert layers[node_id("audio.stages.0.blocks.0.attn.mask")].fan_in == 2  # the AND of mask and K
    assert s.dt == 1.0 and s.time_steps == 4


def test_portable_form_needs_the_same_neurons_and_synapses_as_the_plain_form():
    """Thresholds as memoryless LIFs, sum pools as 0/1 convs, zero ordering connectors: same
    hardware needs as the plain NIR form (the connectors add nodes and edges, no synapses)."""
    model = create_model("qkf_audio_tiny_deploy", input_size=(32, 32), num_classes=5)
    plain, portable = (summarize(build_graph(model, target=t)) for t in ("nir", "portable"))
    assert portable.nodes > plain.nodes and portable.edges > plain.edges  # the connectors
    for key in ("neurons", "synapses", "max_fan_in", "max_fan_out"):
        assert getattr(portable, key) == getattr(plain, key), key
