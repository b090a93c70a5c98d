"""Tiny prepared caches shared by the training tests (generated here, once per session)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from qkf_snn.datasets import prepare, synthesize
from qkf_snn.training.terms import LossTerm

# Small enough that a tiny model trains an epoch in about a second: 16x16 frames, 16 mel bands x 8
# columns per step, T = 2, 48 clips (6 classes; 36 train / 6 val / 6 test with the stratified split).
TINY = dict(time_steps=2, image_size=16, n_mels=16, audio_width=8, clip_seconds=1.0, progress=False)


@pytest.fixture(scope="session")
def crema_raw(tmp_path_factory) -> Path:
    return synthesize("crema", tmp_path_factory.mktemp("raw") / "crema", clips=48, seed=0, seconds=1.0)


@pytest.fixture(scope="session")
def crema_cache(crema_raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cache") / "crema"
    prepare("crema", crema_raw, out, **TINY)
    return out


@pytest.fixture(scope="session")
def crema_audio_only_cache(crema_raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cache") / "crema-audio"
    prepare("crema", crema_raw, out, modalities=("audio",), **TINY)
    return out


def tiny_overrides(cache: Path, out: Path, **extra) -> dict:
    """Dotted overrides for a fast, deterministic run on a tiny cache."""
    base = {
        "data.dir": str(cache),
        "data.batch_size": 4,
        "data.workers": 0,
        "optim.epochs": 2,
        "optim.lr": 2e-3,
        "optim.warmup_epochs": 1,
        "run.out": str(out),
        "run.progress": "none",
        "run.patience": 0,
        "run.bn_recalibration": 2,
        "run.threads": 1,
        "model.size": "tiny",
        "model.dims": [8, 16, 16],
        "model.heads": [1, 1, 1],
    }
    base.update(extra)
    return base


class SigtermAt(LossTerm):
    """Sends this process SIGTERM during training step ``at`` (as SLURM does before preempting a job;
    None: never), so the loop saves last.pt and stops; its loss is an exact zero."""

    name = "sigterm"

    def __init__(self, at: int | None) -> None:
        self.at, self.calls = at, 0

    def __call__(self, outputs, batch):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return outputs["logits"].new_zeros(()), {}
