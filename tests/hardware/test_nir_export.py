"""Graph building: structure of the exported graph (residual edges, Q-K attention, spike pooling,
read-out), BN folding, refusal of what NIR cannot express, and the .nir file's error handling."""

from __future__ import annotations

import subprocess
import sys

import h5py
import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qkf_snn.errors import UserError
from qkf_snn.hardware.nir import (
    NIRExportError,
    build_graph,
    export_problems,
    fold_batchnorm,
    node_id,
    read_graph,
    write_graph,
)
from qkf_snn.hardware.nir.export import broadcast_geometry
from qkf_snn.hardware.nir.io import metadata
from qkf_snn.models import create_model, recalibrate_bn
from qkf_snn.models.blocks import ConvBNSpike

SMALL = {"input_size": (32, 32), "num_classes": 5}


@pytest.fixture(scope="module")
def av_graph():
    torch.manual_seed(0)
    model = create_model("qkf_av_tiny_deploy", **SMALL)
    return model, build_graph(model, target="nir")  # the plain form: Threshold, SumPool2d


def _sources(graph, node):
    """Module paths (metadata["path"]) of the nodes with an edge into the node of path ``node``."""
    return sorted(graph.nodes[src].metadata["path"] for src, dst in graph.edges if dst == node_id(node))


def test_residual_stream_is_several_edges_into_each_consumer(av_graph):
    _, g = av_graph
    s = "audio.stages.0"
    stem = [f"{s}.embed.layers.2.lif", f"{s}.embed.shortcut.lif"]
    after_attn = stem + [f"{s}.blocks.0.attn.proj.lif"]
    after_mlp = after_attn + [f"{s}.blocks.0.mlp.fc2.lif"]
    assert _sources(g, f"{s}.blocks.0.attn.q.conv") == sorted(stem)
    assert _sources(g, f"{s}.blocks.0.attn.k.conv") == sorted(stem)
    assert _sources(g, f"{s}.blocks.0.mlp.fc1.conv") == sorted(after_attn)
    assert _sources(g, "audio.stages.1.embed.conv1.conv") == sorted(after_mlp)
    assert _sources(g, "audio.stages.1.embed.shortcut.conv") == sorted(after_mlp)


def test_token_attention_is_ones_projections_lif_and_coincidence_threshold(av_graph):
    model, g = av_graph
    p = "video.stages.1.blocks.0.attn"  # QKTA, 32 channels, 2 heads, 4×4 tokens
    heads, dim = model.video.config.heads[1], model.video.config.dims[1]
    gather = g.nodes[node_id(f"{p}.q_sum")].weight[:, :, 0, 0]
    expected = np.kron(np.eye(heads), np.ones((1, dim // heads)))
    np.testing.assert_array_equal(gather, expected)
    np.testing.assert_array_equal(g.nodes[node_id(f"{p}.mask_broadcast")].weight[:, :, 0, 0], expected.T)
    assert _sources(g, f"{p}.q_sum") == [f"{p}.q.lif"]
    assert _sources(g, f"{p}.attn_lif") == [f"{p}.q_sum"]
    assert _sources(g, f"{p}.mask") == sorted([f"{p}.mask_broadcast", f"{p}.k.lif"])
    assert (g.nodes[node_id(f"{p}.mask")].threshold == 1.5).all()
    assert g.nodes[node_id(f"{p}.attn_lif")].metadata["threshold_nominal"] == 0.5


def test_channel_attention_sums_tokens_and_broadcasts_the_mask(av_graph):
    _, g = av_graph
    p = "audio.stages.1.blocks.0.attn"  # QKCA on a 4×4 grid
    q_sum = g.nodes[node_id(f"{p}.q_sum")]
    assert isinstance(q_sum, nir.SumPool2d) and tuple(q_sum.kernel_size) == (4, 4)
    assert tuple(g.nodes[node_id(f"{p}.attn_lif")].output_type["output"]) == (32, 1, 1)
    spread = g.nodes[node_id(f"{p}.mask_broadcast")]
    x = torch.zeros(1, 32, 1, 1)
    x[0, 5] = 1.0  # the mask of channel 5 reaches all 16 tokens of channel 5 and nothing else
    y = F.conv2d(
        x, torch.from_numpy(spread.weight), stride=tuple(spread.stride), padding=tuple(spread.padding)
    )
    assert y.shape == (1, 32, 4, 4) and (y[0, 5] == 1).all() and y.sum() == 16


@pytest.mark.parametrize("hw", [(1, 1), (4, 4), (8, 4), (3, 2), (16, 25), (5, 6)])
def test_broadcast_geometry_copies_one_value_to_every_token(hw):
    k, stride, padding = broadcast_geometry(hw)
    y = F.conv2d(torch.ones(1, 1, 1, 1), torch.ones(1, 1, k, k), stride=stride, padding=padding)
    assert tuple(y.shape[2:]) == hw and (y == 1).all()


def test_spike_max_pool_is_sum_pool_then_threshold(av_graph):
    _, g = av_graph
    p = "video.stages.0.embed.layers.0"
    pool = g.nodes[node_id(f"{p}.pool_sum")]
    assert [tuple(pool.kernel_size), tuple(pool.stride), tuple(pool.padding)] == [(3, 3), (2, 2), (1, 1)]
    assert _sources(g, f"{p}.pool_sum") == [f"{p}.lif"] and _sources(g, f"{p}.pool") == [f"{p}.pool_sum"]
    assert (g.nodes[node_id(f"{p}.pool")].threshold == 0.5).all()
    spikes = (torch.rand(2, 4, 9, 9) < 0.2).float()  # OR over a window = max over spikes
    summed = F.avg_pool2d(spikes, 3, 2, 1, count_include_pad=True, divisor_override=1)
    assert torch.equal((summed > 0.5).float(), F.max_pool2d(spikes, 3, 2, 1))


def test_readout_places_token_sums_and_folds_the_token_mean_into_one_head(av_graph):
    model, g = av_graph
    wf, ca = model.fusion_head.weight.detach(), model.audio.num_features
    head = g.nodes["logits"]  # no Scale node, no Flatten: a 1×1 conv over [audio ‖ video] token sums
    assert isinstance(head, nir.Conv2d) and head.weight.shape == (5, 128, 1, 1)
    expected = torch.cat([wf[:, :ca].double() / 4, wf[:, ca:].double() / 4], 1).float().numpy()
    np.testing.assert_array_equal(head.weight[:, :, 0, 0], expected)  # 2×2 tokens per modality
    np.testing.assert_array_equal(head.bias, model.fusion_head.bias.detach().numpy())
    assert _sources(g, "logits") == ["audio.place", "video.place"]
    assert _sources(g, "audio.place") == ["audio.tokens"] and isinstance(
        g.nodes["audio_tokens"], nir.SumPool2d
    )
    assert _sources(g, "output") == ["logits"]
    assert sorted(g.inputs) == ["input_audio", "input_video"]
    assert not any(isinstance(n, nir.Scale | nir.Flatten) for n in g.nodes.values())
    # audio's token sum lands on channels 0..63, video's on 64..127, nothing else
    audio, video = torch.randint(0, 5, (1, 64, 1, 1)).float(), torch.randint(0, 5, (1, 64, 1, 1)).float()
    placed = sum(
        F.conv2d(x, torch.from_numpy(g.nodes[node_id(f"{m}.place")].weight))
        for m, x in (("audio", audio), ("video", video))
    )
    assert torch.equal(placed.flatten(), torch.cat([audio, video], 1).flatten())


def test_every_conv_is_bn_folded_and_every_neuron_is_exported(av_graph):
    model, g = av_graph
    units = [n for n, m in model.named_modules() if isinstance(m, ConvBNSpike)]
    for unit in units:
        assert isinstance(g.nodes[node_id(f"{unit}.conv")], nir.Conv2d)
        assert isinstance(g.nodes[node_id(f"{unit}.lif")], nir.LIF)
        assert g.nodes[node_id(f"{unit}.conv")].metadata["torch_module"] == f"{unit}.conv"
    attention = [n for n, m in model.named_modules() if n.endswith("attn_lif")]
    assert len(attention) == 6 and all(isinstance(g.nodes[node_id(n)], nir.LIF) for n in attention)
    lifs = [n for n, node in g.nodes.items() if isinstance(node, nir.LIF)]
    assert len(lifs) == len(units) + len(attention)


def test_fold_matches_batchnorm_and_leaves_the_model_untouched():
    model = create_model("qkf_video_tiny_deploy", **SMALL)
    x = model.example_input(4, sequence=True)
    recalibrate_bn(model, [x])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    unit, new = model.stages[0].embed.layers[1], folded.stages[0].embed.layers[1]
    z = torch.randn(8, unit.conv.in_channels, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(new.conv(z), unit.bn(unit.conv(z)), rtol=1e-5, atol=1e-5)
    assert isinstance(new.bn, torch.nn.Identity)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_faithful_model_is_refused_with_each_offending_module():
    problems = export_problems(create_model("qkf_av_tiny", **SMALL))
    paths = sorted(p.split(":")[0] for p in problems)
    pools = [
        "stages.0.embed.layers.0.pool",
        "stages.0.embed.layers.1.pool",
        "stages.1.embed.conv1.pool",
        "stages.2.embed.conv1.pool",
    ]
    expected = [f"{m}.{p}" for m in ("audio", "video") for p in pools]
    expected += ["audio.stages.2.blocks.0.attn", "video.stages.2.blocks.0.attn"]
    assert paths == sorted(expected)
    for line in problems:
        path, why = line.split(": ", 1)
        assert ("SSA" in why) if path.endswith(".attn") else ("analog" in why and "pool='spike'" in why)
    with pytest.raises(NIRExportError) as err:
        build_graph(create_model("qkf_av_tiny", **SMALL))
    lines = str(err.value).splitlines()
    assert lines[0] == "cannot export to NIR: 10 module(s) have no NIR form" and len(lines) == 11


def test_subtract_reset_is_refused_per_neuron():
    model = create_model("qkf_video_tiny_deploy", neuron={"reset": "subtract"}, **SMALL)
    problems = export_problems(model)
    neurons = [n for n, m in model.named_modules() if n.endswith(("lif", "attn_lif"))]
    assert sorted(p.split(":")[0] for p in problems) == sorted(neurons)
    assert all("reset 'subtract'" in p for p in problems)


def test_deployable_presets_export():
    for name in ("qkf_audio_tiny_deploy", "qkf_video_tiny_deploy", "qkf_av_tiny_deploy"):
        assert export_problems(create_model(name, **SMALL)) == []
    assert create_model("qkf_audio_small_deploy").config.attention == ("qkca", "qkca", "qkta")
    assert create_model("qkf_video_small_deploy").config.attention == ("qkta", "qkta", "qkca")


def test_file_round_trip_keeps_graph_and_metadata(av_graph, tmp_path):
    _, g = av_graph
    path = write_graph(tmp_path / "m.nir", g)
    back = read_graph(path)
    assert sorted(back.nodes) == sorted(g.nodes) and sorted(back.edges) == sorted(g.edges)  # HDF5 sorts names
    meta = metadata(back)
    assert meta["dt"] == 1.0 and meta["time_steps"] == 4 and meta["format"] == "qkf-snn/nir-2"
    assert meta["target"] == "nir" and all(n.isidentifier() and "." not in n for n in back.nodes)
    assert metadata(back.nodes[node_id("audio.stages.0.blocks.0.attn.q.conv")])["path"] == (
        "audio.stages.0.blocks.0.attn.q.conv"
    )
    assert meta["inputs"] == "audio,video"
    lif = back.nodes[node_id("audio.stages.0.blocks.0.attn.attn_lif")]
    assert metadata(lif)["comparator"] == "ge" and metadata(lif)["threshold_nominal"] == 0.5
    np.testing.assert_array_equal(lif.tau, g.nodes[node_id("audio.stages.0.blocks.0.attn.attn_lif")].tau)


def test_unreadable_files_give_one_line(av_graph, tmp_path):
    _, g = av_graph
    good = write_graph(tmp_path / "good.nir", g)
    truncated = tmp_path / "truncated.nir"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.nir"
    garbage.write_bytes(b"not an hdf5 file at all")
    empty_h5 = tmp_path / "empty.nir"
    with h5py.File(empty_h5, "w") as f:
        f.create_dataset("version", data="1.0")
    bogus = tmp_path / "bogus.nir"
    bogus.write_bytes(good.read_bytes())
    with h5py.File(bogus, "r+") as f:  # a node type no NIR reader knows
        del f["node/nodes/logits/type"]
        f["node/nodes/logits"].create_dataset("type", data="Bogus", dtype=h5py.string_dtype())
    cases = {
        tmp_path / "missing.nir": "no such NIR file",
        truncated: "truncated or corrupt",
        garbage: "truncated or corrupt",
        empty_h5: "malformed NIR graph",
        bogus: "malformed NIR graph",
    }
    for path, words in cases.items():
        with pytest.raises(UserError) as err:
            read_graph(path)
        assert words in str(err.value) and "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_non_spiking_twin_is_refused_before_the_walk_within_bounded_memory():
    """The ReLU twin of a recipe-sized model: refused at once, one line per neuron. Walking it first
    built dense real-valued maps until 17.8 GB were reached; the child runs capped at 3 GB more address
    space than it holds after the imports, so a regression fails here instead of exhausting the machine."""
    code = (
        "import resource\n"
        "from qkf_snn.models import create_model\n"
        "from qkf_snn.hardware.nir import export_problems\n"
        "m = create_model('qkf_audio_small', num_classes=6, neuron={'kind': 'relu'}).eval()\n"
        "size = int(next(x for x in open('/proc/self/status') if x.startswith('VmSize')).split()[1]) << 10\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + (3 << 30), size + (3 << 30)))\n"
        "lines = export_problems(m)\n"
        "n = sum(1 for _ in m.modules() if getattr(_, 'kind', None) == 'relu')\n"
        "print(len(lines), n, all(x.endswith(\"neuron kind 'relu' does not spike: NIR has no node for it\") "
        "for x in lines))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    count, neurons, same = done.stdout.split()
    assert int(count) == int(neurons) > 10 and same == "True"
