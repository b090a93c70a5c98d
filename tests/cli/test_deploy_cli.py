"""`qkf deploy check` through the installed console script: exit statuses, one-line errors, the JSON
schema, the Markdown report next to the file, and the demo's deployable AV model end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nir
import pytest
from deploy_graphs import two_input_graph, two_layer_conv  # tests/ (on sys.path: tests/conftest.py)

from qkf_snn.hardware.deployment import PLATFORMS

QKF = Path(sys.executable).with_name("qkf")  # the installed console script, as users call it


@pytest.fixture
def conv_file(tmp_path) -> Path:
    path = tmp_path / "conv.nir"
    nir.write(path, two_layer_conv())
    return path


def test_passing_platforms_exit_0_and_write_markdown(qkf, conv_file):
    r = qkf("deploy", "check", conv_file, "--platform", "speck,loihi2,truenorth")
    assert r.returncode == 0, r.stderr
    assert "speck PASS, loihi2 PASS, truenorth PASS" in " ".join(r.stdout.split())
    md = conv_file.with_suffix(".deploy.md").read_text()
    assert "| speck | PASS | 2 | 9 | n/a |" in md
    assert "| l1 | 144 | 2,592 | 1 | kernel 128, neuron 256: core" in md
    assert not list(conv_file.parent.glob(".*.tmp"))  # written atomically, nothing left behind


def test_a_failing_platform_exits_1_with_json(qkf, conv_file, tmp_path):
    report = tmp_path / "out" / "r.md"
    report.parent.mkdir()
    r = qkf("deploy", "check", conv_file, "--platform", "xylo,speck", "--json", "--report", report)
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert list(doc["platforms"]) == ["xylo", "speck"]
    assert (doc["platforms"]["xylo"]["verdict"], doc["platforms"]["speck"]["verdict"]) == ("FAIL", "PASS")
    assert doc["graph"]["neurons"] == 192 and doc["graph"]["synapses"] == 4320
    assert report.is_file() and not conv_file.with_suffix(".deploy.md").exists()


def test_two_input_node_fails_speck_and_xylo(qkf, tmp_path):
    path = tmp_path / "two.nir"
    nir.write(path, two_input_graph())
    r = qkf("deploy", "check", path, "--platform", "all", "--json")
    assert r.returncode == 1
    verdicts = {k: v["verdict"] for k, v in json.loads(r.stdout)["platforms"].items()}
    assert verdicts == {
        "loihi2": "PASS",
        "spinnaker2": "PASS",
        "speck": "FAIL",
        "xylo": "FAIL",
        "truenorth": "FAIL",
    }
    r = qkf("deploy", "check", path, "--platform", "loihi2")
    assert r.returncode == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["missing.nir"], "missing.nir: no such NIR file"),
        (["not.nir"], "not a readable NIR (HDF5) file"),
        (["conv.nir", "--platform", "loihi3"], "--platform: unknown platform 'loihi3'"),
        (["conv.nir", "--platform", ","], "--platform: no platform named"),
        (["conv.nir", "--report", "nodir/r.md"], "directory nodir does not exist"),
        (["conv.nir", "--bogus"], "--bogus"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, conv_file, args, needle):
    (tmp_path / "not.nir").write_text("hello")
    r = subprocess.run(
        [str(QKF), "deploy", "check", *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr
    assert not (tmp_path / "conv.deploy.md").exists()  # nothing written for bad input


@pytest.mark.slow
def test_demo_av_model_end_to_end(qkf, tmp_path):
    """The demo's deployable AV model (untrained weights: the structure is what is checked), exported
    with `qkf export nir`, checked on every platform: float32 weights fail every integer chip."""
    from qkf_snn.training.build import DataInfo, ModelSpec
    from qkf_snn.training.checkpoint import save_checkpoint
    from qkf_snn.training.config import TrainConfig

    spec = ModelSpec("qkf_av_tiny_deploy", "av", {"num_classes": 6, "input_size": [32, 32]})
    info = DataInfo(6, [f"c{i}" for i in range(6)], 4, (1, 32, 32), (3, 32, 32))
    ckpt = tmp_path / "best.pt"
    payload = {
        "kind": "best",
        "spec": spec.to_dict(),
        "data": info.to_dict(),
        "config": TrainConfig().to_dict(),
    }
    save_checkpoint(ckpt, payload | {"model": spec.build().state_dict()})
    graph = tmp_path / "av.nir"
    r = qkf("export", "nir", ckpt, "--out", graph, "--json")
    assert r.returncode == 0, r.stderr
    exported = json.loads(r.stdout)

    r = qkf("deploy", "check", graph, "--platform", "all", "--json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc["platforms"]) == set(PLATFORMS)
    for p in doc["platforms"].values():
        assert p["verdict"] in ("PASS", "FAIL") and isinstance(p["cores"], int)
        for c in p["constraints"]:
            assert set(c) >= {"name", "limit", "value", "pass", "source"}
    g = doc["graph"]
    # the same counts as the exporter's summary; the read-out adds the 6 logits as output units
    assert (g["synapses"], g["neurons"]) == (exported["synapses"], exported["neurons"] + 6)
    assert (g["max_fan_in"], g["max_fan_out"]) == (exported["max_fan_in"], exported["max_fan_out"])
    assert (g["output_neurons"], g["weight_bits"], g["threshold_bits"]) == (6, "float32", "float32")
    spiking = sum(1 for layer in exported["layers"] if layer["neurons"])
    loihi = doc["platforms"]["loihi2"]
    by_name = {c["name"]: c for c in loihi["constraints"]}
    assert by_name["weight bits"] | {"source": ""} == {
        "name": "weight bits",
        "limit": 8,
        "value": "float32",
        "pass": False,
        "source": "",
        "note": by_name["weight bits"]["note"],
    }
    assert by_name["neurons per chip"]["pass"] is True and by_name["synapses per chip"]["pass"] is True
    # no layer of the tiny model exceeds 8,192 neurons: one Loihi 2 core per spiking layer + read-out
    assert loihi["cores"] == spiking + 1 and loihi["verdict"] == "FAIL"
    speck = {c["name"]: c for c in doc["platforms"]["speck"]["constraints"]}
    assert speck["cores"]["value"] == spiking + 1 and speck["cores"]["pass"] is False
    # the residual stream sums up to 4 spike sources into one conv: more than a sinabs Merge joins
    assert (speck["inputs joined at one node"]["value"], speck["inputs joined at one node"]["pass"]) == (
        4,
        False,
    )
    assert len(g["multi_input_nodes"]) == 35
    xylo = {c["name"]: c for c in doc["platforms"]["xylo"]["constraints"]}
    assert (xylo["output neurons"]["value"], xylo["output neurons"]["pass"]) == (6, True)
    assert xylo["input channels"]["value"] == 1 * 32 * 32 + 3 * 32 * 32
    assert loihi["energy"]["time_steps"] == 4
    assert graph.with_suffix(".deploy.md").is_file()
