"""Exact resume: a run SIGKILLed (or preempted) mid-epoch and resumed ends where an uninterrupted run
ends, also from a checkpoint in the layout written before loss terms."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from qkf_snn.training import compose
from qkf_snn.training.checkpoint import read_checkpoint
from qkf_snn.training.loop import TrainingInterrupted, train

from .conftest import SigtermAt, tiny_overrides

# AV with OGM-GE (noise on) and auxiliary losses, augmentation on, batch 2: 18 steps per epoch.
SETTINGS = {"data.batch_size": 2, "optim.epochs": 2, "run.checkpoint_every": 4, "run.log_every": 1}
KILL_AT_STEP = 18 + 5  # in epoch 2, one step after its first mid-epoch checkpoint (step 20)


def _command(cache: Path, out: Path, name: str) -> list[str]:
    overrides = tiny_overrides(cache, out, **SETTINGS, **{"run.name": name})
    args = [sys.executable, "-m", "qkf_snn.cli.main", "train", "crema", "--modality", "av"]
    for key, value in overrides.items():
        args += ["--set", f"{key}={json.dumps(value) if isinstance(value, list) else value}"]
    return args


def _steps_logged(path: Path) -> int:
    if not path.is_file():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.endswith("}")]
    return json.loads(lines[-1])["step"] if lines else 0


def _kill_mid_epoch(cache: Path, out: Path) -> None:
    proc = subprocess.Popen(_command(cache, out, "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    steps = out / "killed" / "steps.jsonl"
    deadline = time.monotonic() + 300
    while _steps_logged(steps) < KILL_AT_STEP:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run did not reach the kill point in time")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _metrics(run: Path) -> tuple[dict, list[dict]]:
    results = json.loads((run / "results.json").read_text())
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for record in history:
        record.pop("time_s"), record.pop("cpu_s")
    return results, history


def _assert_close(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-6, rel=0), path
    else:
        assert a == b, path


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(crema_cache, tmp_path):
    _kill_mid_epoch(crema_cache, tmp_path)
    killed = tmp_path / "killed"
    ckpt = read_checkpoint(killed / "last.pt")
    assert ckpt["epoch"] == 1 and 0 < ckpt["batch_in_epoch"] < 18, "the checkpoint is not mid-epoch"
    assert not (killed / "results.json").exists()

    # resume in a new process (here: this one) with the same settings, and an uninterrupted reference
    threads = torch.get_num_threads()
    try:
        config = lambda name: compose(  # noqa: E731
            "crema", "av", overrides=tiny_overrides(crema_cache, tmp_path, **SETTINGS, **{"run.name": name})
        )
        train(config("killed"), resume=True)
        train(config("straight"))
    finally:
        torch.set_num_threads(threads)

    resumed, straight = _metrics(killed), _metrics(tmp_path / "straight")
    _assert_close(resumed, straight)  # val history, best epoch, val and test metrics, to 1e-6
    weights = (
        read_checkpoint(killed / "last.pt")["model"],
        read_checkpoint(tmp_path / "straight" / "last.pt")["model"],
    )
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])  # in fact bit for bit
    steps = [json.loads(line)["step"] for line in (killed / "steps.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 37))  # the log was cut back to the checkpoint, no step twice


# qk fusion (its tiny model learns from the first steps), OGM-GE and auxiliary losses: 9 steps per epoch
OLD = {"model.fusion": "qk", "balance.ogm_ge": True, "balance.aux_weight": 0.5, "run.log_every": 1}


def test_a_checkpoint_in_the_layout_before_loss_terms_resumes_exactly(crema_cache, tmp_path):
    config = lambda name: compose(  # noqa: E731
        "crema", "av", overrides=tiny_overrides(crema_cache, tmp_path, **OLD, **{"run.name": name})
    )
    threads = torch.get_num_threads()
    try:
        with pytest.raises(
            TrainingInterrupted, match="stopped by a signal; resume from .*last.pt with --resume"
        ):
            train(config("old"), terms=[SigtermAt(13)])
        path = tmp_path / "old" / "last.pt"
        ckpt = read_checkpoint(path)
        assert (ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"]) == (1, 4, 13)  # saved at the signal
        # rewrite it as the loop wrote it before loss terms: no "terms", no term sums, and OGM-GE's
        # coefficient sums as a list [audio, video, steps]
        state, sums = ckpt["state"], ckpt["state"].pop("coeff_sums")
        del ckpt["terms"], state["term_sums"]
        state["coeff_sums"] = [sums["audio"], sums["video"], float(sums["steps"])]
        assert sums["steps"] == 4 and sums["audio"] + sums["video"] < 8  # OGM-GE slowed an encoder
        torch.save(ckpt, path)
        (tmp_path / "old" / ".last.pt.x1.tmp").write_bytes(b"half")  # a write that a kill cut short
        train(config("old"), resume=True)
        train(config("straight"))
    finally:
        torch.set_num_threads(threads)

    assert not (tmp_path / "old" / ".last.pt.x1.tmp").exists()
    resumed, straight = _metrics(tmp_path / "old"), _metrics(tmp_path / "straight")
    assert resumed[0]["val"] == straight[0]["val"] and resumed[0]["test"] == straight[0]["test"]
    assert resumed[1][0] == straight[1][0]  # epoch 1, written before the checkpoint
    # epoch 2 exactly, OGM-GE's mean coefficients included; the old layout held no sums of the unimodal
    # CEs, so the resumed epoch reports no means of them rather than means of a part of the epoch
    assert resumed[1][1] == {
        k: v for k, v in straight[1][1].items() if k not in ("train_ce_audio", "train_ce_video")
    }
    assert straight[1][1]["ogm_coeff_audio"] + straight[1][1]["ogm_coeff_video"] < 2
    steps = [(tmp_path / run / "steps.jsonl").read_text() for run in ("old", "straight")]
    assert steps[0] == steps[1]
    weights = [read_checkpoint(tmp_path / run / "last.pt")["model"] for run in ("old", "straight")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])
