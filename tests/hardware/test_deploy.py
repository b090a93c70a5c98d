"""Chip mapping report on small hand-built NIR graphs: every count and verdict below is computed by
hand in the comments, then compared with what `qkf_snn.hardware.deployment` measures."""

from __future__ import annotations

import math

import nir
import numpy as np
import pytest
from deploy_graphs import chain, conv, if_, lif, two_input_graph, two_layer_conv  # tests/

from qkf_snn.errors import UserError
from qkf_snn.hardware.deployment import PLATFORMS, analyse, check_graph, get_platforms
from qkf_snn.hardware.deployment.analysis import READOUT
from qkf_snn.hardware.deployment.check import evaluate
from qkf_snn.hardware.deployment.packing import dynapcnn_memory
from qkf_snn.hardware.deployment.platforms import UNKNOWN


def _constraint(report, platform: str, name: str) -> dict:
    (c,) = [c for c in report.to_dict()["platforms"][platform]["constraints"] if c["name"] == name]
    return c


# ---- the 2-layer conv net -------------------------------------------------------------------------------


def test_two_layer_conv_counts():
    f = analyse(two_layer_conv())
    l1, l2 = f.layers
    assert (l1.name, l1.model, l1.shape, l2.name) == ("l1", "IF", (4, 6, 6), "l2")
    # neurons: 4·6·6 = 144 and 3·4·4 = 48
    assert (l1.neurons, l2.neurons, f.neurons) == (144, 48, 192)
    assert (f.hidden_neurons, f.output_neurons) == (144, 48)  # l2 spikes straight into Output
    # synapses = output units × kernel fan-in used (no zero weights, no padding): 144·2·9, 48·4·9
    assert (l1.synapses, l2.synapses, f.synapses) == (2592, 1728, 4320)
    assert (l1.fan_in, l2.fan_in, f.max_fan_in) == (18, 36, 36)
    # an l1 unit in the middle of the 6×6 map is read by 3×3 output positions of each of 3 channels
    assert (l1.fan_out, f.max_fan_out) == (27, 27)
    assert (l1.destinations, l2.destinations, f.max_destinations) == (1, 0, 1)
    # |w| ≤ 2 with negatives: 2 magnitude bits + sign = 3; thresholds 3 and 5: 3 bits, unsigned
    assert (f.weight_bits, f.threshold_bits) == (3, 3)
    assert f.neuron_models == ("IF",) and f.resets == ("to 0",) and f.synaptic_types == ("Conv2d",)
    assert (f.multi_input_nodes, f.input_channels) == (0, 128)
    assert (f.max_node_inputs, f.non_weight_neuron_inputs, f.consecutive_weights) == (1, 0, 0)
    # channel 0 of c1 uses all four values {-2,-1,1,2}; c2 only 1
    assert (l1.distinct_weights, l2.distinct_weights, f.distinct_weights_per_neuron) == (4, 1, 4)
    # weights stored per synapse at the measured width: 2592·3/8 and 1728·1/8 bytes
    assert (l1.weight_bytes, l2.weight_bytes) == (972.0, 216.0)


def test_two_layer_conv_speck_memory_by_sinabs_formula():
    l1, l2 = analyse(two_layer_conv()).layers
    # kernel = c_in·2^(⌈log2 k²⌉+⌈log2 c_out⌉), neuron = c·2^(⌈log2 h⌉+⌈log2 w⌉)
    assert dynapcnn_memory(l1) == (2 * 2 ** (4 + 2), 4 * 2 ** (3 + 3)) == (128, 256)
    assert dynapcnn_memory(l2) == (4 * 2 ** (4 + 2), 3 * 2 ** (2 + 2)) == (256, 48)


EXPECTED_TWO_LAYER = {  # verdict, cores needed, failing constraints
    "loihi2": ("PASS", 2, set()),  # 144 and 48 neurons ≤ 8,192 per core: one core per layer
    "spinnaker2": ("PASS", 2, set()),  # 972 B and 216 B ≤ 128 KiB per PE
    "speck": ("PASS", 2, set()),  # 2 layers, each fits a core; IF, 3-bit weights, 3-bit thresholds
    "xylo": ("FAIL", 6, {"output neurons", "input channels", "neuron models", "synaptic node types"}),
    "truenorth": ("PASS", 2, set()),  # ⌈144/256⌉ + ⌈48/256⌉; fan-in 36, fan-out 27, 4 weight values
}


@pytest.mark.parametrize("key", list(PLATFORMS))
def test_every_platform_on_the_two_layer_conv(key):
    assert set(EXPECTED_TWO_LAYER) == set(PLATFORMS), "a platform without hand-computed answers"
    report = check_graph(two_layer_conv(), get_platforms(key))
    doc = report.to_dict()["platforms"][key]
    verdict, cores, failing = EXPECTED_TWO_LAYER[key]
    assert (doc["verdict"], doc["cores"]) == (verdict, cores)
    assert {c["name"] for c in doc["constraints"] if c["pass"] is False} == failing
    assert report.passed is (verdict == "PASS")
    for c in doc["constraints"]:
        assert set(c) >= {"name", "limit", "value", "pass", "source"} and c["source"]
        # an unknown limit is never checked, a known one always is
        assert (c["limit"] == UNKNOWN) is (c["pass"] is None)
        if c["limit"] == UNKNOWN:
            assert c["source"].startswith("unknown (no public source found)")
    p = PLATFORMS[key]
    assert doc["cores_available"] == p.packing.cores_available
    # the cores row compares the packing's answer with what the platform has
    cores_rows = [c for c in doc["constraints"] if c["name"].startswith("cores")]
    assert all(c["value"] == cores for c in cores_rows)


def test_two_layer_xylo_values():
    report = check_graph(two_layer_conv(), get_platforms("xylo"))
    assert _constraint(report, "xylo", "output neurons")["value"] == 48
    assert _constraint(report, "xylo", "input channels")["value"] == 2 * 8 * 8
    assert _constraint(report, "xylo", "hidden neurons") | {"source": ""} == {
        "name": "hidden neurons",
        "limit": 1000,
        "value": 144,
        "pass": True,
        "source": "",
    }
    # arrays: max(⌈144/1000⌉, ⌈48/8⌉, 1) = 6
    assert report.platforms[0].cores == 6


def test_energy_bound_from_the_profiler_constants():
    """Every unit spikes every step: 4,320 synaptic events and 192 neuron updates + spikes per step."""
    report = check_graph(two_layer_conv(), get_platforms("all"))
    energy = {r.key: r.energy for r in report.platforms}
    assert energy["loihi2"]["upper_bound_pj_per_step"] == pytest.approx(4320 * 23.6 + 192 * (81.0 + 1.7))
    assert energy["spinnaker2"]["upper_bound_pj_per_step"] == pytest.approx(4320 * 450.0 + 192 * 2190.0)
    assert energy["truenorth"]["upper_bound_pj_per_step"] == pytest.approx(4320 * 26.0)
    assert energy["speck"] is None and energy["xylo"] is None  # no per-operation constants: left out
    assert energy["loihi2"]["upper_bound_pj_per_sample"] is None  # the graph has no time_steps metadata


# ---- weights and thresholds are read from the file -------------------------------------------------------


def test_float_weights_fail_integer_chips_with_the_dtype():
    rng = np.random.default_rng(1)
    w1 = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)  # random floats, not integers
    report = check_graph(two_layer_conv(w1), get_platforms("loihi2,speck,xylo,spinnaker2"))
    assert report.facts.weight_bits == "float32"
    for key in ("loihi2", "speck", "xylo"):
        c = _constraint(report, key, "weight bits")
        assert (c["value"], c["pass"]) == ("float32", False)
    assert _constraint(report, "spinnaker2", "weight bits")["pass"] is None  # unknown limit


@pytest.mark.parametrize(
    ("top", "bits", "speck"),
    [(127.0, 8, True), (128.0, 9, False), (-128.0, 9, False)],  # with a −1 present: signed widths
)
def test_integer_weights_width_edges(top, bits, speck):
    w1 = -np.ones((4, 2, 3, 3), dtype=np.float32)
    w1[1, 1, 1, 1] = top
    report = check_graph(two_layer_conv(w1), get_platforms("speck"))
    assert report.facts.weight_bits == bits
    assert _constraint(report, "speck", "weight bits")["pass"] is speck


def test_integer_weights_stored_as_ints_are_measured():
    w1 = np.full((4, 2, 3, 3), 3, dtype=np.int16)
    assert analyse(two_layer_conv(w1)).weight_bits == 2  # 0..3 unsigned


def test_threshold_not_an_integer_is_float():
    g = two_layer_conv()
    g.nodes["l2"] = if_((3, 4, 4), 4.5)
    report = check_graph(g, get_platforms("xylo"))
    assert report.facts.threshold_bits == "float64"  # the array's own dtype
    assert _constraint(report, "xylo", "threshold bits")["pass"] is False


# ---- a two-input node -------------------------------------------------------------------------------


def test_two_input_node_counts():
    f = analyse(two_input_graph())
    by = {layer.name: layer for layer in f.layers}
    assert set(by) == {"a", "b", "t"}
    # A, B: 3 units × 4 inputs; t: one synapse per unit from each of a and b
    assert (by["a"].synapses, by["b"].synapses, by["t"].synapses, f.synapses) == (12, 12, 6, 30)
    assert (by["a"].fan_in, by["t"].fan_in, by["a"].fan_out, by["t"].fan_out) == (4, 2, 1, 0)
    assert (f.multi_input_nodes, f.multi_input_names, f.max_node_inputs) == (1, ["t"], 2)
    # t is fed straight by the spiking a and b; every other neuron through an Affine
    assert (f.non_weight_neuron_inputs, f.consecutive_weights) == (1, 0)
    assert (f.hidden_neurons, f.output_neurons, f.input_channels) == (6, 3, 4)
    assert f.weight_bits == 5  # |12| → 4 bits, plus the sign of B's −1
    assert f.neuron_models == ("LIF", "Threshold")
    assert f.synaptic_types == ("Affine",)
    assert by["a"].distinct_weights == 4 and by["t"].distinct_weights == 1  # a row of A: 1,2,3,4


def test_two_input_node_verdicts():
    report = check_graph(two_input_graph(), get_platforms("all"))
    doc = report.to_dict()["platforms"]
    failing = {k: {c["name"] for c in v["constraints"] if c["pass"] is False} for k, v in doc.items()}
    assert failing == {
        "loihi2": set(),
        "spinnaker2": set(),
        "speck": {"neuron models"},  # two inputs are what one sinabs Merge joins
        "xylo": {"neuron inputs not through a weight", "neuron models"},
        "truenorth": {"neuron models"},  # a stateless Threshold is not among its neuron models
    }
    assert {k: v["verdict"] for k, v in doc.items()} == {
        "loihi2": "PASS",
        "spinnaker2": "PASS",
        "speck": "FAIL",
        "xylo": "FAIL",
        "truenorth": "FAIL",
    }
    assert not report.passed
    assert _constraint(report, "speck", "inputs joined at one node") | {"source": ""} == {
        "name": "inputs joined at one node",
        "limit": 2,
        "value": 2,
        "pass": True,
        "source": "",
    }
    # a third spike source into t is more than a Merge joins
    g = two_input_graph()
    g.nodes["c"] = lif((3,), 4.0)
    g.nodes["C"] = nir.Affine(np.ones((3, 4), dtype=np.float32), np.zeros(3))
    g.edges += [("input", "C"), ("C", "c"), ("c", "t")]
    c = _constraint(check_graph(g, get_platforms("speck")), "speck", "inputs joined at one node")
    assert (c["value"], c["pass"]) == (3, False)


# ---- too large for Speck ------------------------------------------------------------------------------


def test_ten_layers_need_ten_speck_cores():
    report = check_graph(chain(10), get_platforms("speck,loihi2"))
    speck = report.to_dict()["platforms"]["speck"]
    assert (speck["verdict"], speck["cores"]) == ("FAIL", 10)
    # 1×1 kernels: 2·2^(0+1) = 4 entries, neurons 2·2^(2+2) = 32: every layer fits any core, 9 cores
    assert _constraint(report, "speck", "cores") | {"source": ""} == {
        "name": "cores",
        "limit": 9,
        "value": 10,
        "pass": False,
        "source": "",
    }
    assert _constraint(report, "speck", "layers that fit no free core")["value"] == 1
    assert report.to_dict()["platforms"]["loihi2"]["cores"] == 10
    assert check_graph(chain(9), get_platforms("speck")).passed


def test_a_layer_too_big_for_any_speck_core():
    # 32 channels on 64×64: neuron memory 32·2^(6+6) = 131,072 > 65,536 (the largest core)
    g = chain(1, channels=32, hw=64)
    (layer,) = analyse(g).layers
    assert dynapcnn_memory(layer) == (32 * 2 ** (0 + 5), 131_072)
    report = check_graph(g, get_platforms("speck,loihi2,truenorth"))
    assert _constraint(report, "speck", "layers that fit no free core")["value"] == 1
    assert report.to_dict()["platforms"]["speck"]["verdict"] == "FAIL"
    # Loihi 2: ⌈131,072/8,192⌉ = 16 cores; TrueNorth ⌈131,072/256⌉ = 512; fan-in 32 ≤ 256
    assert report.to_dict()["platforms"]["loihi2"]["cores"] == 16
    assert report.to_dict()["platforms"]["truenorth"]["cores"] == math.ceil(32 * 64 * 64 / 256) == 512


def test_speck_cores_are_matched_not_first_fit():
    """Seven small layers, then two whose kernels fit only the 64 Ki-kernel cores 5 and 6: placing
    layers in order on the first free core that fits would use cores 0-6 and strand the last two."""
    g = chain(9, channels=64, hw=1)
    for i in (7, 8):
        g.nodes[f"c{i}"] = conv(np.ones((64, 64, 3, 3), dtype=np.float32), (1, 1), padding=1)
    memories = [dynapcnn_memory(x) for x in analyse(g).layers]
    # small: 64·2^(0+6) = 4,096 kernel entries; big: 64·2^(4+6) = 65,536; neurons 64·2^0 = 64
    assert memories == [(4096, 64)] * 7 + [(65536, 64)] * 2
    fits_big = [c for c, (km, _) in enumerate(PLATFORMS["speck"].packing.core_memories) if km >= 65536]
    assert fits_big == [5, 6]
    report = check_graph(g, get_platforms("speck"))
    assert report.passed and _constraint(report, "speck", "layers that fit no free core")["value"] == 0
    details = [row.detail for row in report.platforms[0].packing.layers]
    assert {d.rsplit("core ", 1)[1] for d in details[7:]} == {"5", "6"}


def test_readout_layer_holds_terminal_synaptic_nodes():
    g = two_layer_conv()
    g.nodes["flat"] = nir.Flatten(input_type={"input": np.array([3, 4, 4])}, start_dim=0)
    g.nodes["fc"] = nir.Affine(np.ones((5, 48), dtype=np.float32), np.zeros(5))
    g.nodes["output"] = nir.Output(output_type={"output": np.array([5])})
    g.edges = [e for e in g.edges if e != ("l2", "output")] + [
        ("l2", "flat"),
        ("flat", "fc"),
        ("fc", "output"),
    ]
    f = analyse(g)
    readout = f.layers[-1]
    assert (readout.name, readout.neurons, readout.synapses, readout.fan_in) == (READOUT, 5, 240, 48)
    assert f.layers[1].destinations == 1 and not f.layers[1].output
    assert (f.hidden_neurons, f.output_neurons, f.neurons) == (192, 5, 197)
    assert f.consecutive_weights == 0  # fc is fed by spikes (through Flatten)
    # a sum-pool between the spikes and fc: two weight nodes in a row, which Xylo's DRC refuses
    g.nodes["pool"] = nir.SumPool2d(np.array([1, 1]), np.array([1, 1]), np.array([0, 0]))
    g.edges = [e for e in g.edges if e != ("l2", "flat")] + [("l2", "pool"), ("pool", "flat")]
    report = check_graph(g, get_platforms("xylo"))
    assert report.facts.consecutive_weights == 1
    assert _constraint(report, "xylo", "consecutive weight nodes")["pass"] is False


def test_evaluate_rules():
    from qkf_snn.hardware.deployment.platforms import Limit

    le = Limit("x", "weight_bits", 8, "s")
    assert evaluate(le, 8) is True and evaluate(le, 9) is False and evaluate(le, "float32") is False
    assert evaluate(Limit("x", "m", None, "s"), 10**9) is None
    sub = Limit("x", "m", ("IF",), "s", test="subset")
    assert evaluate(sub, ("IF",)) is True and evaluate(sub, ("IF", "LIF")) is False
    assert evaluate(Limit("x", "m", ("*",), "s", test="subset"), ("Anything",)) is True


def test_unknown_platform_names_itself():
    with pytest.raises(KeyError, match="loihi3"):
        get_platforms("loihi2,loihi3")
    assert [p.key for p in get_platforms("all")] == list(PLATFORMS)


def test_cubalif_counts_and_unknown_node_types_are_refused():
    g = two_layer_conv()
    shape = (3, 4, 4)
    g.nodes["l2"] = nir.CubaLIF(
        tau_syn=np.full(shape, 2.0),
        tau_mem=np.full(shape, 4.0),
        r=np.ones(shape),
        v_leak=np.zeros(shape),
        v_threshold=np.full(shape, 5.0),
    )
    f = analyse(g)
    assert (f.neurons, f.synapses, f.neuron_models) == (192, 4320, ("CubaLIF", "IF"))
    g.nodes["l2"] = nir.Delay(np.ones(shape))
    with pytest.raises(UserError, match=r"^g\.nir: node type\(s\) Delay not analysed by deploy check"):
        check_graph(g, get_platforms("all"), path="g.nir")
