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
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
