"""Checkpoints: weights_only loading, clear errors, RNG round trips, load_model."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from qkf_snn.errors import UserError
from qkf_snn.training.build import DataInfo, ModelSpec
from qkf_snn.training.checkpoint import (
    load_model,
    load_state,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from qkf_snn.training.config import compose

INFO = DataInfo(4, ["a", "b", "c", "d"], 2, (1, 16, 8), (3, 16, 16))


def _spec() -> ModelSpec:
    kw = {"num_classes": 4, "time_steps": 2, "input_size": [16, 8], "dims": [8, 16, 16], "heads": [1, 1, 1]}
    return ModelSpec("qkf_audio_tiny", "audio", kw)


def _save(path, model, spec, **extra):
    config = compose("crema", "audio").to_dict()
    payload = {"kind": "best", "spec": spec.to_dict(), "data": INFO.to_dict(), "epoch": 3, "step": 30,
               "config": config, "model": model.state_dict(), "metrics": {"acc": 0.5}}  # fmt: skip
    save_checkpoint(path, {**payload, **extra})


def test_load_model_rebuilds_the_same_function(tmp_path):
    spec = _spec()
    torch.manual_seed(1)
    model = spec.build().eval()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_var.fill_(0.01)  # non-default buffers must travel too (and make it spike)
    _save(tmp_path / "best.pt", model, spec)
    loaded = load_model(tmp_path / "best.pt")
    assert not loaded.model.training
    assert (loaded.epoch, loaded.step, loaded.kind, loaded.metrics) == (3, 30, "best", {"acc": 0.5})
    assert loaded.config["dataset"] == "crema" and loaded.config["modality"] == "audio"
    assert loaded.spec == spec and loaded.class_names == ["a", "b", "c", "d"]
    batch = model.example_batch(3)
    with torch.no_grad():
        assert torch.equal(loaded.model(batch), model(batch))


def test_not_a_checkpoint_is_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        read_checkpoint(tmp_path / "text.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a qkf training checkpoint"):
        read_checkpoint(tmp_path / "other.pt")


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_loading_refuses_arbitrary_pickled_objects(tmp_path):
    """weights_only=True: a checkpoint that would run code on load is rejected, not executed."""
    torch.save({"format": "qkf-checkpoint", "version": 1, "x": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        read_checkpoint(tmp_path / "evil.pt")


def test_weights_of_another_model_are_refused(tmp_path):
    spec = _spec()
    bigger = ModelSpec(spec.name, spec.modality, {**spec.kwargs, "dims": [8, 16, 32]})
    _save(tmp_path / "best.pt", bigger.build(), spec)  # weights of one model, spec of another
    with pytest.raises(UserError, match=r"weights do not fit this model \(\d+ shape mismatch"):
        load_model(tmp_path / "best.pt")
    with pytest.raises(UserError, match="missing"):
        load_state(spec.build(), {}, "x")


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = rng_state()
    save_checkpoint(tmp_path / "r.pt", {"rng": state})
    expected = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_state(read_checkpoint(tmp_path / "r.pt")["rng"])
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])
    with pytest.raises(pickle.UnpicklingError):  # plain numpy state would not load with weights_only
        torch.save({"np": np.random.get_state()}, tmp_path / "n.pt")
        torch.load(tmp_path / "n.pt", weights_only=True)
