"""`qkf export nir` / `qkf verify nir` on a checkpoint trained by `qkf_snn.training` on a synthetic
CREMA-D cache: export, pass, catch a tampered graph, refuse a faithful model, reject broken files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from qkf_snn.cli.main import app
from qkf_snn.hardware.nir import metadata, node_id, read_graph

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A synthetic CREMA-D cache (32×32, T = 4) and one epoch of the tiny deployable AV model."""
    from qkf_snn.datasets import prepare, synthesize
    from qkf_snn.training.config import TrainConfig
    from qkf_snn.training.loop import train

    root = tmp_path_factory.mktemp("nir_cli")
    synthesize("crema", root / "raw", clips=18, seed=0)
    prepare(
        "crema",
        root / "raw",
        root / "cache",
        time_steps=4,
        image_size=32,
        n_mels=32,
        audio_width=32,
        progress=False,
    )
    cfg = TrainConfig.from_dict(
        {
            "dataset": "crema",
            "modality": "av",
            "model": {"name": "qkf_av_tiny_deploy"},
            "data": {"dir": str(root / "cache"), "batch_size": 6},
            "optim": {"epochs": 1},
            "run": {"out": str(root / "runs"), "progress": "none", "device": "cpu", "bn_recalibration": 0},
        }
    )
    result = train(cfg)
    return root, result.run_dir / "best.pt"


@pytest.fixture(scope="module")
def exported(run):
    root, ckpt = run
    out = root / "model.nir"
    result = runner.invoke(app, ["export", "nir", str(ckpt), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output)


def test_export_writes_the_graph_and_a_summary(run, exported):
    root, ckpt = run
    out, summary = exported
    assert summary["path"] == str(out) and summary["neurons"] > 0 and summary["synapses"] > summary["neurons"]
    graph = read_graph(out)
    meta = metadata(graph)
    assert meta["model_name"] == "qkf_av_tiny_deploy" and meta["dataset"] == "crema"
    assert len(json.loads(meta["class_names"])) == 6 and meta["time_steps"] == 4
    assert meta["target"] == "portable" and meta["dt"] == float(np.float32(1e-4))  # snnTorch's step
    assert summary["nodes"] == len(graph.nodes) and summary["edges"] == len(graph.edges)
    table = runner.invoke(
        app, ["export", "nir", str(ckpt), "--out", str(root / "again.nir")], env={"COLUMNS": "200"}
    )
    assert table.exit_code == 0 and "max fan-in" in table.output


def test_exported_weights_are_the_folded_models_bit_for_bit(run, exported):
    from qkf_snn.hardware.nir import fold_batchnorm
    from qkf_snn.training.checkpoint import load_model

    folded = fold_batchnorm(load_model(run[1]).model)
    graph = read_graph(exported[0])
    for name in ("video.stages.0.blocks.0.attn.q.conv", "audio.stages.0.embed.layers.0.conv"):
        conv, node = folded.get_submodule(name), graph.nodes[node_id(name)]
        weight = torch.from_numpy(node.weight).reshape(conv.weight.shape)
        assert torch.equal(weight, conv.weight.detach()) and torch.equal(
            torch.from_numpy(node.bias), conv.bias.detach()
        )


def test_verify_passes_on_the_exported_graph(run, exported):
    root, ckpt = run
    args = f"verify nir {exported[0]} --checkpoint {ckpt} --data {root / 'cache'} --samples 4".split()
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["passed"] and report["samples"] == 4 and report["time_steps"] == 4
    assert report["first_divergence"] is None
    assert all(n["mismatches"] == 0 for n in report["nodes"])
    assert sum(n["compared"] for n in report["nodes"] if n["spiking"]) > 0
    assert report["fold"]["samples"] == 4 and report["fold"]["spikes_total"] > 0
    text = runner.invoke(app, [*args, "--no-fold-check"])
    assert text.exit_code == 0 and "PASSED: identical spikes at every compared node and step" in text.output


def test_verify_names_the_first_diverging_node_of_a_tampered_graph(run, exported, tmp_path):
    root, ckpt = run
    out = tmp_path / "tampered.nir"
    out.write_bytes(exported[0].read_bytes())
    node = "audio_stages_1_blocks_0_mlp_fc1_conv"
    with h5py.File(out, "r+") as f:  # a file edited behind our back: +3 on one conv's bias
        bias = f[f"node/nodes/{node}/bias"]
        bias[...] = bias[()] + np.float32(3.0)
    args = f"verify nir {out} --checkpoint {ckpt} --data {root / 'cache'} --samples 2 --no-fold-check".split()
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    first = report["first_divergence"]
    assert (
        not report["passed"] and first["node"] == "audio_stages_1_blocks_0_mlp_fc1_lif" and first["step"] == 0
    )
    assert 0 < first["mismatches"] <= first["compared"]
    clean = [
        n for n in report["nodes"] if n["name"].startswith("video_") or n["name"].startswith("audio_stages_0")
    ]
    assert clean and all(n["mismatches"] == 0 for n in clean)
    text = " ".join(runner.invoke(app, args).output.split())
    assert f"FAILED: first divergence at node {first['node']}, step 0: {first['mismatches']:,} of" in text


def test_faithful_checkpoint_is_refused_with_module_names(run, tmp_path, run_main):
    from qkf_snn.training.build import DataInfo, ModelSpec
    from qkf_snn.training.checkpoint import save_checkpoint
    from qkf_snn.training.config import TrainConfig

    spec = ModelSpec("qkf_av_tiny", "av", {"num_classes": 6, "input_size": [32, 32]})
    info = DataInfo(6, [f"c{i}" for i in range(6)], 4, (1, 32, 32), (3, 32, 32))
    ckpt = tmp_path / "faithful.pt"
    save_checkpoint(
        ckpt,
        {
            "kind": "best",
            "spec": spec.to_dict(),
            "data": info.to_dict(),
            "config": TrainConfig().to_dict(),
            "model": spec.build().state_dict(),
        },
    )
    code, _, err = run_main("export", "nir", ckpt, "--out", tmp_path / "x.nir")
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert "cannot export to NIR: 10 module(s) have no NIR form" in lines[0]
    assert any(line.strip().startswith("audio.stages.2.blocks.0.attn: SSA") for line in lines)
    assert any(
        line.strip().startswith("video.stages.0.embed.layers.0.pool: max-pool over analog") for line in lines
    )
    assert not (tmp_path / "x.nir").exists()


def test_broken_files_and_arguments_give_one_line(run, exported, tmp_path, run_main):
    root, ckpt = run
    good = exported[0]
    truncated = tmp_path / "cut.nir"
    truncated.write_bytes(good.read_bytes()[:1000])
    data = ["--checkpoint", str(ckpt), "--data", str(root / "cache")]
    code, _, err = run_main("verify", "nir", truncated, *data)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "truncated or corrupt" in err
    code, _, err = run_main("verify", "nir", good, *data, "--samples", "0")
    assert code == 2 and "--samples must be >= 1" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_main("export", "nir", ckpt, "--out", tmp_path / "no" / "x.nir")
    assert code == 2 and "does not exist" in err
