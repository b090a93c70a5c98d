"""DDP under torchrun: two CPU processes (gloo) on a tiny cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qkf_snn.training.checkpoint import read_checkpoint

from .conftest import tiny_overrides


@pytest.mark.slow
def test_two_processes_train_in_step_and_count_every_clip_once(crema_cache, tmp_path):
    overrides = tiny_overrides(crema_cache, tmp_path, **{"run.name": "ddp", "optim.epochs": 1})
    worker = Path(__file__).with_name("ddp_worker.py")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd = [*torchrun, str(worker), json.dumps(overrides)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    run = tmp_path / "ddp"
    # global batch 4 = 2 per rank: 36 train clips give 9 steps per epoch, as in one process
    assert read_checkpoint(run / "last.pt")["step"] == 9
    # rank 0 alone writes logs: one record per epoch, not one per rank
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    results = json.loads((run / "results.json").read_text())
    for split in ("val", "test"):  # metrics gathered from both ranks, every clip exactly once
        assert results[split]["n"] == 6 and sum(map(sum, results[split]["confusion"])) == 6
    # replicas stayed identical: weights (after OGM-GE with noise) and BatchNorm statistics
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt")["model"] for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)


@pytest.mark.slow
def test_the_energy_budget_under_ddp_keeps_one_multiplier_and_counts_every_clip_once(crema_cache, tmp_path):
    """Two ranks: the multiplier is updated from the global batch's estimate (the same on both ranks,
    so the replicas stay identical), and the validation energy sums both ranks' shares: it is what
    `qkf profile` gives for the best checkpoint on the whole split, in one process."""
    energy = {"run.name": "ddp", "optim.epochs": 2, "energy.budget": "1nJ", "energy.start_epoch": 1}
    overrides = tiny_overrides(crema_cache, tmp_path, **energy)
    worker = Path(__file__).with_name("ddp_worker.py")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.run([*torchrun, str(worker), json.dumps(overrides)], capture_output=True, text=True,
                          timeout=600, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank0["terms"] == rank1["terms"] and rank0["terms"][0]["multiplier"] > 0
    assert all(torch.equal(rank0["model"][k], rank1["model"][k]) for k in rank0["model"])
    run = tmp_path / "ddp"
    assert read_checkpoint(run / "last.pt")["terms"]["energy"] == rank0["terms"][0]
    results = json.loads((run / "results.json").read_text())
    qkf = Path(sys.executable).with_name("qkf")
    args = ["profile", run / "best.pt", "--data", crema_cache, "--split", "val", "--out", tmp_path / "prof"]
    done = subprocess.run([qkf, *args, "--no-plots"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    profiled = json.loads((tmp_path / "prof" / "profile.json").read_text())["energy"]["models"][
        "h45_fp32_paper"
    ]
    assert profiled["total_pj"] == pytest.approx(results["val"]["energy_uJ"] * 1e6, rel=1e-6)
