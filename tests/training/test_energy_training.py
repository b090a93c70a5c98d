"""Energy-aware training end to end: through the installed `qkf`, the energy logged for the
validation split is what `qkf profile` reports for that checkpoint and split; the ANN twin
(`--neuron relu`) trains and is priced in MACs; a budget run interrupted
mid-epoch resumes with its multiplier bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qkf_snn.errors import RunStopped
from qkf_snn.hardware.profile import CountOptions
from qkf_snn.hardware.profile.checkpoint import profile_checkpoint
from qkf_snn.hardware.profile.conventions import layer_counts
from qkf_snn.hardware.profile.energy import estimate_energy
from qkf_snn.hardware.profile.term import energy_terms
from qkf_snn.training import compose
from qkf_snn.training.checkpoint import read_checkpoint
from qkf_snn.training.loop import train

from .conftest import SigtermAt, tiny_overrides

QKF = str(Path(sys.executable).with_name("qkf"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}
TINY = ("--epochs 1 -b 4 --dims 8 16 16 --num-heads 1 1 1 --workers 0 --progress none --threads 1 "
        "--set run.bn_recalibration=2 --set run.patience=0").split()  # fmt: skip


def qkf(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([QKF, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=600)
    return done


def _train_and_profile(cache: Path, out: Path, name: str, model: str, *extra: str) -> tuple[dict, dict]:
    done = qkf("train", "crema", "--modality", "audio", "--data", cache, "--out", out, "--name", name,
               "--energy-model", model, *TINY, *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    run = out / name
    done = qkf(
        "profile", run / "best.pt", "--data", cache, "--split", "val", "--out", run / "prof", "--no-plots"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((run / "results.json").read_text()), json.loads(
        (run / "prof" / "profile.json").read_text()
    )


def test_qkf_profile_agrees_with_the_energy_logged_in_training(crema_cache, tmp_path):
    results, profile = _train_and_profile(
        crema_cache, tmp_path, "snn", "h45_fp32_paper", "--energy-budget", "1nJ"
    )
    logged = results["val"]["energy_uJ"] * 1e6  # the best epoch's validation split, pJ per sample
    profiled = profile["energy"]["models"]["h45_fp32_paper"]["total_pj"]
    assert profile["protocol"]["split"] == "val" and profiled > 0
    assert logged == pytest.approx(profiled, rel=1e-6)  # issue 17 asks for 1 %; the rules are the same
    history = [json.loads(line) for line in (tmp_path / "snn" / "metrics.jsonl").read_text().splitlines()]
    (record,) = history
    assert record["val_energy_uJ"] == results["val"]["energy_uJ"]
    assert record["energy_budget_uJ"] == 1e-3 and record["energy_multiplier"] > 0  # 1 nJ: always over
    assert record["train_energy_uJ"] > 1e-3 and results["test"]["energy_uJ"] > 0
    header = (tmp_path / "snn" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_energy_uJ", "val_energy_uJ", "energy_multiplier", "train_energy_multiplier"} <= set(header)


def test_the_relu_twin_trains_and_is_priced_in_macs(crema_cache, tmp_path):
    """Trained through `qkf`; profiled in process (the console-script path is the test above; NIR
    export's refusal of every kind that does not spike is tests/training/test_extension_points.py)."""
    done = qkf("train", "crema", "--modality", "audio", "--data", crema_cache, "--out", tmp_path,
               "--name", "ann", "--model", "qkf_audio_tiny", "--neuron", "relu",
               "--energy-model", "h45_fp32_exact", "--energy-weight", "0.01", *TINY)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "ann" / "results.json").read_text())
    profile, _ = profile_checkpoint(tmp_path / "ann" / "best.pt", crema_cache, "val", None, 16, "cpu")
    assert {r.neuron for r in profile.neurons} == {"relu"}
    synapses = [r for r in layer_counts(profile, CountOptions()) if r.kind == "synapse"]
    assert synapses and all(r.role in ("analog", "head") for r in synapses)  # no layer reads spikes
    assert all(r.exact_ac == 0 and r.paper_ac == 0 and r.exact_mac > 0 for r in synapses)
    energy = estimate_energy(profile, models=["h45_fp32_exact"])["h45_fp32_exact"].total_pj
    assert results["val"]["energy_uJ"] * 1e6 == pytest.approx(energy, rel=1e-6)


def test_a_budget_run_interrupted_mid_epoch_resumes_bit_for_bit(crema_cache, tmp_path):
    settings = {"optim.epochs": 2, "energy.budget": "50nJ", "energy.multiplier_lr": 0.5,
                "run.checkpoint_every": 0, "run.bn_recalibration": 1,
                "model.name": "qkf_audio_tiny"}  # fmt: skip

    def config(name):
        return compose("crema", "audio", overrides=tiny_overrides(crema_cache, tmp_path, **settings,
                                                                   **{"run.name": name}))  # fmt: skip

    threads = torch.get_num_threads()
    try:
        with pytest.raises(RunStopped):
            train(config("cut"), terms=[*energy_terms(config("cut")), SigtermAt(13)])
        assert read_checkpoint(tmp_path / "cut" / "last.pt")["batch_in_epoch"] == 4  # epoch 2, step 13
        train(config("cut"), resume=True, terms=[*energy_terms(config("cut")), SigtermAt(None)])
        train(config("straight"), terms=[*energy_terms(config("straight")), SigtermAt(None)])
    finally:
        torch.set_num_threads(threads)
    cut, straight = (read_checkpoint(tmp_path / n / "last.pt") for n in ("cut", "straight"))
    assert cut["terms"]["energy"] == straight["terms"]["energy"]
    assert straight["terms"]["energy"]["multiplier"] > 0
    assert all(torch.equal(cut["model"][k], straight["model"][k]) for k in straight["model"])
    histories = [
        [json.loads(line) for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
        for n in ("cut", "straight")
    ]
    keys = ("train_energy_uJ", "val_energy_uJ", "energy_multiplier", "train_energy_multiplier")
    assert [[h[k] for k in keys] for h in histories[0]] == [[h[k] for k in keys] for h in histories[1]]


def test_a_budget_with_a_warm_up_and_the_choice_within_the_budget(crema_cache, tmp_path):
    """Through `qkf`: before --energy-start-epoch the energy is logged but not in the loss (μ stays 0);
    the best epoch is chosen among the epochs within the budget, and a budget no epoch meets is said
    to be missed, in one line, results.json and its protocol."""
    runs = {}
    for name, budget in (("missed", "1nJ"), ("met", "1mJ")):
        done = qkf("train", "crema", "--modality", "audio", "--data", crema_cache, "--out", tmp_path,
                   "--name", name, "--energy-budget", budget, "--energy-start-epoch", "1", *TINY,
                   "--epochs", "3", "--set", "run.log_every=1")  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = done
    steps = [json.loads(line) for line in (tmp_path / "missed" / "steps.jsonl").read_text().splitlines()]
    warm = [s for s in steps if s["epoch"] == 0]
    assert len(warm) == 9 and all(s["energy_multiplier"] == 0.0 and s["energy_uJ"] > 0 for s in warm)
    assert all(s["loss"] == pytest.approx(s["ce"], rel=1e-6) for s in warm)  # audio: no auxiliary CE
    later = [s for s in steps if s["epoch"] > 0]
    assert later[0]["energy_multiplier"] == 0.0 and later[1]["energy_multiplier"] > 0
    assert all(s["loss"] > s["ce"] for s in later[1:])  # μ · (E/B − 1) with E far over 1 nJ
    records = [json.loads(line) for line in (tmp_path / "missed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["energy_multiplier"] for r in records][0] == 0.0 and records[-1]["energy_multiplier"] > 0
    assert [r["feasible"] for r in records] == [False] * 3
    missed = json.loads((tmp_path / "missed" / "results.json").read_text())
    assert missed["best_feasible"] is False
    assert (
        "among the epochs meeting validation energy <= 0.001 uJ per sample (h45_fp32_paper)"
        in (missed["protocol"])
    )
    line = "warning: no epoch met validation energy <= 0.001 uJ per sample (h45_fp32_paper); chosen on val"
    assert runs["missed"].stderr.strip() == line + " over all epochs"
    met = json.loads((tmp_path / "met" / "results.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "met" / "metrics.jsonl").read_text().splitlines()]
    assert met["best_feasible"] is True and [r["feasible"] for r in records] == [True] * 3
    assert "warning" not in runs["met"].stderr
