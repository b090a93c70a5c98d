"""Round trips: the exported graph, run step by step on Norse cells, gives the model's spikes at every
node and step, for any edge order; a wrong graph is caught at the node where it goes wrong."""

from __future__ import annotations

import copy
import random

import nir
import numpy as np
import pytest
import torch

from qkf_snn.hardware.nir import NorseExecutor, build_graph, read_graph, verify_graph, write_graph
from qkf_snn.models import UniModalClassifier, create_model, recalibrate_bn

SPIKING = (nir.LIF, nir.IF, nir.Threshold)


def _active(model, batches):
    """BN statistics from the batches themselves, so the model spikes in eval mode."""
    return recalibrate_bn(model, batches)


@pytest.fixture(scope="module")
def av():
    torch.manual_seed(0)
    model = create_model("qkf_av_tiny_deploy", input_size=(32, 32), num_classes=5)
    batches = [model.example_batch(2) for _ in range(2)]
    _active(model, batches)
    return model, batches, build_graph(model, target="nir")  # Threshold and padded SumPool2d nodes


def test_av_round_trip_through_the_file_is_spike_exact(av, tmp_path):
    model, batches, graph = av
    back = read_graph(write_graph(tmp_path / "av.nir", graph))
    report = verify_graph(back, model, batches)
    spiking = {n for n, node in back.nodes.items() if isinstance(node, SPIKING)}
    checked = {c.name: c for c in report.nodes}
    assert {n for n, c in checked.items() if c.spiking} == spiking  # every spiking node is compared
    assert report.passed and report.first_divergence is None and report.spike_mismatches == 0
    assert report.samples == 4 and report.time_steps == 4
    for name in spiking:  # all steps and samples of every unit
        units = int(np.prod(back.nodes[name].output_type["output"]))
        assert checked[name].compared == 4 * 4 * units
    active = [c for c in checked.values() if c.spiking and c.spikes > 0]
    assert len(active) == len(spiking)  # a silent network would make the check vacuous
    assert report.logits_close and report.logits_max_abs_diff < 1e-6
    assert {back.nodes[n].metadata["path"].split(".")[-1] for n in report.unmatched} == {
        "pool_sum",
        "mask_broadcast",
        "tokens",
        "place",
        "logits",
    }
    # BN folding compared on every neuron of the original model, counts adding up.
    lifs = [n for n, node in back.nodes.items() if isinstance(node, nir.LIF)]
    assert report.fold.spikes_total == sum(
        4 * 4 * int(np.prod(back.nodes[n].output_type["output"])) for n in lifs
    )
    assert report.fold.samples == 4 and report.fold.spike_agreement > 0.999


def test_native_float32_run_agrees_too(av):
    model, batches, graph = av
    report = verify_graph(graph, model, batches[:1], precision="float32", check_fold=False)
    assert report.passed and report.logits_max_abs_diff < 1e-5


def _shuffled(graph: nir.NIRGraph, seed: int) -> nir.NIRGraph:
    rng = random.Random(seed)
    edges = list(graph.edges)
    rng.shuffle(edges)
    names = list(graph.nodes)
    rng.shuffle(names)
    nodes = {n: copy.deepcopy(graph.nodes[n]) for n in names}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata))


@torch.no_grad()
def test_edge_and_node_order_change_nothing(av):
    model, batches, graph = av
    inputs = {"input_audio": batches[0]["audio"], "input_video": batches[0]["video"]}
    base = NorseExecutor(graph).run(inputs, 4)
    for seed in (1,):
        other = NorseExecutor(_shuffled(graph, seed)).run(inputs, 4)
        assert torch.equal(other.outputs, base.outputs)
        assert other.nodes.keys() == base.nodes.keys()
        assert all(torch.equal(other.nodes[n], base.nodes[n]) for n in base.nodes)


def test_a_wrong_weight_is_found_at_its_first_spiking_node(av):
    model, batches, graph = av
    broken = _shuffled(graph, 0)
    target = "video_stages_1_blocks_0_attn_k"
    broken.nodes[f"{target}_conv"].bias = broken.nodes[f"{target}_conv"].bias + np.float32(0.75)
    report = verify_graph(broken, model, batches, check_fold=False)
    assert not report.passed
    first = report.first_divergence
    assert first.node == f"{target}_lif"
    check = {c.name: c for c in report.nodes}[first.node]
    assert first.mismatches == check.per_step[first.step] > 0
    assert first.step == min(check.per_step)
    units = int(np.prod(broken.nodes[first.node].output_type["output"]))
    assert first.compared == 4 * units
    # everything that does not depend on the broken conv still matches exactly
    assert all(c.mismatches == 0 for c in report.nodes if c.name.startswith("audio_"))


def _unimodal_plif():
    enc = create_model("qkf_audio_tiny_deploy", input_size=(32, 32), num_classes=4, neuron={"kind": "plif"})
    with torch.no_grad():
        for m in enc.modules():
            if hasattr(m, "beta") and m.beta.requires_grad:
                m.beta.fill_(0.6180339)
    model = UniModalClassifier(enc, "audio")
    return model, [model.example_batch(3)]


def _bare_if_static():
    model = create_model("qkf_video_tiny_deploy", input_size=(32, 32), num_classes=4, neuron={"kind": "if"})
    return model, [{"x": model.example_input(3)}]


def _qk_fusion_rectangular_audio():
    model = create_model(
        "qkf_av_tiny_deploy",
        input_size=(32, 32),
        audio_input_size=(32, 16),
        num_classes=4,
        fusion="qk",
        fusion_stage=0,
    )
    return model, [model.example_batch(3)]


def _sum_fusion_tau3():
    model = create_model(
        "qkf_av_tiny_deploy",
        input_size=(32, 32),
        num_classes=4,
        fusion="sum",
        neuron={"tau": 3.0, "comparator": "gt"},
    )
    return model, [model.example_batch(2)]


@pytest.mark.parametrize(
    "make,dt",
    [
        (_unimodal_plif, 1.0),
        (_bare_if_static, 1.0),
        (_qk_fusion_rectangular_audio, 1.0),
        (_sum_fusion_tau3, 1e-3),
    ],
    ids=["unimodal-plif", "bare-if-static", "qk-fusion-rect-audio", "sum-fusion-tau3-dt1e-3"],
)
def test_other_models_round_trip(make, dt, tmp_path):
    torch.manual_seed(1)
    model, batches = make()
    _active(model, [b["x"] if "x" in b else b for b in batches])
    graph = read_graph(write_graph(tmp_path / "m.nir", build_graph(model, dt=dt, target="nir")))
    report = verify_graph(graph, model, batches, check_fold=False)
    assert report.passed and report.dt == dt
    assert sum(c.spikes for c in report.nodes) > 0
