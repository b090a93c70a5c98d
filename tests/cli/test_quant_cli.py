"""Quantization through `qkf`: `export nir --weight-bits N` (per channel and per layer), `verify nir`
on the quantized file (exit 0; a tampered integer weight exits 1), `deploy check` passing Loihi 2's
8-bit weights, and `train --qat-bits N --resume-from CKPT` whose checkpoint exports to exactly what it
trained. One synthetic CREMA-D cache and one untrained deployable AV checkpoint (BN statistics from
the data) serve all; the arithmetic itself is tested in tests/hardware/test_quant_export.py."""

from __future__ import annotations

import json

import h5py
import nir
import numpy as np
import pytest
import torch

from qkf_snn.hardware.nir.fold import neuron_outputs
from qkf_snn.models import recalibrate_bn
from qkf_snn.models.quant import QuantSpec


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A synthetic CREMA-D cache (32×32, T = 4) and a checkpoint of the deployable AV model with BN
    statistics from that data (untrained weights: the arithmetic is what is checked)."""
    from qkf_snn.datasets import prepare, synthesize
    from qkf_snn.hardware.nir.verify import collate
    from qkf_snn.training.build import DataInfo, ModelSpec
    from qkf_snn.training.checkpoint import save_checkpoint
    from qkf_snn.training.config import TrainConfig
    from qkf_snn.training.data import build_dataset

    root = tmp_path_factory.mktemp("quant_cli")
    synthesize("crema", root / "raw", clips=18, seed=0)
    prepare("crema", root / "raw", root / "cache", time_steps=4, image_size=32, n_mels=32, audio_width=32,
            progress=False)  # fmt: skip
    config = TrainConfig.from_dict(
        {"dataset": "crema", "modality": "av", "data": {"dir": str(root / "cache")}}
    )
    spec = ModelSpec("qkf_av_tiny_deploy", "av", {"num_classes": 6, "input_size": [32, 32]})
    torch.manual_seed(0)
    model = spec.build()
    data = build_dataset(config.to_dict(), root / "cache", "train")
    recalibrate_bn(model, [collate([data[i] for i in range(len(data))])])
    info = DataInfo(6, [f"c{i}" for i in range(6)], 4, (1, 32, 32), (3, 32, 32))
    payload = {"kind": "best", "spec": spec.to_dict(), "data": info.to_dict(), "config": config.to_dict()}
    save_checkpoint(root / "best.pt", payload | {"model": model.state_dict()})
    return root, root / "best.pt"


def test_cli_exports_verifies_and_deploys_quantized_graphs(checkpoint, qkf, run_main):
    root, ckpt = checkpoint
    out = root / "q8.nir"
    r = qkf("export", "nir", ckpt, "--out", out, "--weight-bits", "8", "--target", "nir", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == str(out)
    data = ("--data", root / "cache", "--split", "train")
    verify = ("verify", "nir", out, "--checkpoint", ckpt, *data, "--samples", "2")
    r = qkf(*verify, "--no-fold-check", "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    doc = json.loads(r.stdout)
    assert doc["passed"] and doc["quantization"] == "int8 per-channel" and doc["samples"] == 2
    spiking = [n for n in doc["nodes"] if n["spiking"]]
    assert sum(n["compared"] for n in spiking) > 5 * 10**5 and sum(n["spikes"] for n in spiking) > 10**4

    r = run_main(
        "deploy", "check", out, "--platform", "loihi2", "--json"
    )  # in process: the file is the point
    assert r.code == 0, r.out + r.err
    loihi = json.loads(r.out)["platforms"]["loihi2"]
    bits = {c["name"]: c for c in loihi["constraints"]}["weight bits"]
    assert loihi["verdict"] == "PASS" and bits["value"] == 8 and bits["pass"] is True

    tampered = root / "tampered.nir"
    tampered.write_bytes(out.read_bytes())
    node = "audio_stages_0_embed_layers_0_conv"
    with h5py.File(tampered, "r+") as f:  # one integer weight one step off
        weight = f[f"node/nodes/{node}/weight"]
        w = weight[()]
        i = np.unravel_index(np.argmax(np.abs(w)), w.shape)
        w[i] -= np.sign(w[i])
        weight[...] = w
    r = qkf("verify", "nir", tampered, *verify[3:], "--no-fold-check", "--json")
    assert r.returncode == 1, r.stderr
    first = json.loads(r.stdout)["first_divergence"]
    assert first["node"] == "audio_stages_0_embed_layers_0_lif"

    out = root / "q4.nir"  # per layer (its spikes: tests/hardware/test_quant_export.py)
    r = run_main("export", "nir", ckpt, "--out", out, "--weight-bits", "4", "--per-layer")
    assert r.code == 0, r.err
    assert "weights int4 per-layer" in " ".join(r.out.split())
    graph = nir.read(out)
    assert graph.metadata["quant_granularity"] == "per-layer" and graph.metadata["weight_bits"] == 4
    peaks = [np.abs(n.weight).max() for name, n in graph.nodes.items() if name.endswith("_conv")]
    assert all(4 <= p <= 7 for p in peaks)  # a power-of-two scale puts each layer's peak in [qmax/2, qmax]


def _record(model, batch) -> dict[str, torch.Tensor]:
    spikes, logits = neuron_outputs(model, batch)
    return {**spikes, "logits": logits}


def test_qat_fine_tunes_a_checkpoint_and_exports_exactly_what_it_trained(checkpoint, qkf):
    """`qkf train --qat-bits 4 --resume-from CKPT`: starts from the checkpoint's weights, trains with
    fake-quantized weights, records the setting; its forward is bit-exact to its 4-bit export."""
    import yaml

    from qkf_snn.hardware.nir.verify import collate
    from qkf_snn.models.quant import quantize_model
    from qkf_snn.training.checkpoint import load_model, read_checkpoint
    from qkf_snn.training.data import build_dataset

    root, ckpt = checkpoint
    r = qkf("train", "crema", "--modality", "av", "--data", root / "cache", "--model", "qkf_av_tiny_deploy",
             "--qat-bits", "4", "--resume-from", ckpt, "--epochs", "1", "--batch-size", "4", "--out",
             root / "runs", "--name", "qat", "--progress", "none", "--device", "cpu", "--workers", "0",
             "--no-augment", "--patience", "0", "--lr", "1e-3", "--warmup-epochs", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    run = root / "runs" / "qat"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["quant"] == {"bits": 4, "per_channel": True} and saved["run"]["resume_from"] == str(ckpt)
    start, trained = read_checkpoint(ckpt)["model"], read_checkpoint(run / "best.pt")["model"]
    conv = "audio.stages.0.embed.layers.0.conv.weight"
    assert not torch.equal(start[conv], trained[conv])  # it trained from there...
    assert (start[conv] - trained[conv]).abs().max() < 0.1 * start[conv].abs().max()  # ...not from scratch
    stats = "audio.stages.0.embed.layers.0.bn.running_var"
    assert torch.equal(start[stats], trained[stats])  # BN frozen

    loaded = load_model(run / "best.pt")
    assert loaded.model.qat_spec == QuantSpec(4)
    data = build_dataset(loaded.config, root / "cache", "train")
    batch = collate([data[i] for i in range(4)])
    qat, ptq = _record(loaded.model, batch), _record(quantize_model(loaded.model, QuantSpec(4)), batch)
    assert qat.keys() == ptq.keys() and len(qat) > 40
    assert all(torch.equal(qat[k], ptq[k]) for k in qat)  # every neuron's spikes, and the logits
    # its export at 4 bits is quantize_model's graph, spike-exact: tests/hardware/test_quant_export.py


def test_profile_prices_the_quantized_model_in_int8(checkpoint, run_main):
    root, ckpt = checkpoint
    args = ("profile", ckpt, "--data", root / "cache", "--split", "train", "--samples", "2", "--no-plots")
    r = run_main(*args, "--weight-bits", "8", "--out", root / "p8")
    assert r.code == 0, r.err
    doc = json.loads((root / "p8" / "profile.json").read_text())
    assert (
        doc["protocol"]["weight_precision"] == "int8 per-channel"
        and doc["energy"]["main"] == "h45_int8_exact"
    )
    assert "weights int8 per-channel, energy at 45 nm INT8" in " ".join(r.out.split())
    assert "Precision assumed: weights int8 per-channel" in (root / "p8" / "profile.md").read_text()
    r = run_main(*args, "--out", root / "p32")
    assert r.code == 0, r.err
    float_doc = json.loads((root / "p32" / "profile.json").read_text())
    assert float_doc["energy"]["main"] == "h45_fp32_exact"
    # the same counts priced per operation: 0.23 vs 4.6 pJ per MAC, 0.03 vs 0.9 per AC (45 nm)
    exact = doc["totals"]["conventions"]["exact"]
    assert doc["energy"]["models"]["h45_int8_exact"]["total_pj"] == pytest.approx(
        exact["mac"] * 0.23 + exact["ac"] * 0.03, rel=1e-9
    )
