"""Checkpoints: atomic writes, ``weights_only`` loading, RNG states, and :func:`load_model`.

A checkpoint is a plain dict (nanoGPT style) of tensors and built-in types only, so that
``torch.load(..., weights_only=True)`` can read it::

    format, version           "qkf-checkpoint", 1
    kind                      "last" (everything to resume) or "best" (the model chosen on validation)
    spec                      {"name", "modality", "kwargs"}: create_model(name, **kwargs)
    data                      {"num_classes", "class_names", "time_steps", "audio_shape", "video_shape"}
    config                    the effective run configuration (TrainConfig.to_dict())
    model                     state_dict
    epoch, step               epochs completed; optimiser steps taken
    batch_in_epoch            batches of epoch ``epoch`` already trained (mid-epoch resume)
    metrics                   validation metrics of the epoch the model comes from (best) or {}
    optimizer, scheduler, scaler, rng     (last only) their state dicts, to continue bit for bit
    state                     (last only) :class:`TrainState` as a dict: progress, selection, history
                              and the current epoch's running sums
    terms                     (last only) each loss term's state_dict, by name (see terms.py)

:func:`checkpoint_payload` builds this dict and :func:`restore` reads a ``last`` one back. Checkpoints
written before loss terms (no ``terms``; ``state.coeff_sums`` a list [audio, video, steps]) resume too.

Writes go to a temporary file beside the target, are flushed to disk, then renamed over it: a kill
at any moment leaves the previous complete checkpoint in place.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qkf_snn.errors import UserError, first_line
from qkf_snn.io import atomic_write_bytes
from qkf_snn.models.quant import QuantSpec, enable_qat
from qkf_snn.training import terms as loss_terms
from qkf_snn.training.build import DataInfo, ModelSpec

FORMAT = "qkf-checkpoint"
VERSION = 1


@dataclass
class CoeffSums:
    """OGM-GE's coefficients summed over the current epoch's steps (their means are logged)."""

    audio: float = 0.0
    video: float = 0.0
    steps: int = 0

    def add(self, audio: float, video: float) -> None:
        self.audio, self.video, self.steps = self.audio + audio, self.video + video, self.steps + 1

    def means(self) -> dict[str, float]:
        return {
            "ogm_coeff_audio": self.audio / max(self.steps, 1),
            "ogm_coeff_video": self.video / max(self.steps, 1),
        }


@dataclass
class TrainState:
    """Everything about progress that is not in the model/optimiser/scheduler state dicts."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps taken
    batch_in_epoch: int = 0  # batches of the current epoch already trained
    best_epoch: int = -1
    best_acc: float = -1.0
    best_loss: float = math.inf
    best_feasible: bool = False  # the best epoch met every loss term's constraint (see terms.feasible)
    bad_epochs: int = 0  # epochs since the last improvement (early stopping)
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per epoch
    # sums over the current epoch's batches on this rank (train loss and accuracy)
    loss_sum: float = 0.0
    ce_sum: float = 0.0  # the fused logits' CE alone (comparable with and without loss terms)
    correct: int = 0
    seen: int = 0
    coeff_sums: CoeffSums = field(default_factory=CoeffSums)
    # the loss terms' step scalars × samples; None for the rest of an epoch resumed from a checkpoint
    # written before loss terms (its first steps' scalars are unknown, so the epoch has no means)
    term_sums: dict[str, float] | None = field(default_factory=dict)

    def next_epoch(self) -> None:
        """Epoch ``epoch`` is done: move to the start of the next one, with empty sums."""
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.loss_sum, self.ce_sum, self.correct, self.seen = 0.0, 0.0, 0, 0
        self.coeff_sums, self.term_sums = CoeffSums(), {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        coeff = data.get("coeff_sums", {})
        if isinstance(coeff, list | tuple):  # before CoeffSums: [audio, video, steps]
            coeff = {"audio": coeff[0], "video": coeff[1], "steps": int(coeff[2])}
        if "term_sums" not in data and data.get("batch_in_epoch", 0) > 0:
            data = {**data, "term_sums": None}
        if "best_feasible" not in data:  # before constraints: any chosen epoch was feasible
            data = {**data, "best_feasible": data.get("best_epoch", -1) >= 0}
        return cls(**{**data, "coeff_sums": CoeffSums(**coeff)})


def checkpoint_payload(
    kind: str,
    *,
    spec: ModelSpec,
    data: DataInfo,
    config: dict[str, Any],
    model: nn.Module,
    state: TrainState,
    metrics: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    terms: Sequence[loss_terms.LossTerm] = (),
) -> dict[str, Any]:
    """The dict described above; ``kind="last"`` adds what resuming needs."""
    payload = {"kind": kind, "spec": spec.to_dict(), "data": data.to_dict(), "config": config,
               "model": model.state_dict(), "epoch": state.epoch, "step": state.step,
               "batch_in_epoch": state.batch_in_epoch, "metrics": metrics or {}}  # fmt: skip
    if kind == "last":
        payload.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                       scaler=scaler.state_dict(), rng=rng_state(), state=state.to_dict(),
                       terms=loss_terms.states(terms))  # fmt: skip
    return payload


def restore(
    ckpt: dict[str, Any],
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    terms: Sequence[loss_terms.LossTerm] = (),
) -> TrainState:
    """Load a ``last`` checkpoint into freshly built objects, set the RNGs; the progress to continue from."""
    load_state(model, ckpt["model"], f"checkpoint {path}")
    groups = len(ckpt["optimizer"]["param_groups"])
    if groups != len(optimizer.param_groups):
        raise UserError(
            f"--resume: checkpoint {path} holds an optimiser with {groups} parameter groups, this "
            f"version builds {len(optimizer.param_groups)} (an older qkf wrote it); resume with that "
            "version or start again with --overwrite"
        )
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    state = TrainState.from_dict(ckpt["state"])
    loss_terms.load_states(terms, ckpt.get("terms"), path)
    return state


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` ``payload`` (plus format and version) atomically."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``; one line if it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to unpickle means "not a checkpoint we can read"
        raise UserError(f"checkpoint {path}: not a readable checkpoint ({first_line(err)[:160]})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"checkpoint {path}: not a qkf training checkpoint (no {FORMAT!r} marker)")
    if ckpt.get("version") != VERSION:
        raise UserError(f"checkpoint {path}: format version {ckpt.get('version')}, this qkf reads {VERSION}")
    return ckpt


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming the first mismatches."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} shape mismatch(es), e.g. {k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
            )
        if missing:
            parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
        raise UserError(f"{source}: weights do not fit this model ({'; '.join(parts)})")
    model.load_state_dict(state)


@dataclass
class LoadedModel:
    """A trained model ready to use: ``model`` in eval mode on the CPU, and where it came from."""

    model: nn.Module
    config: dict[str, Any]  # the effective run config: dataset, modality, data, model (name, overrides) ...
    spec: ModelSpec  # the exact create_model call
    data: DataInfo  # classes, time steps and input shapes it was trained on
    path: Path
    kind: str = "best"  # best | last
    epoch: int = 0
    step: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # validation metrics at that epoch

    @property
    def class_names(self) -> list[str]:
        return self.data.class_names


def quant_spec(config: dict[str, Any]) -> QuantSpec | None:
    """The QAT quantization a run's saved config asks for, or None (float training)."""
    quant = config.get("quant") or {}
    return (
        None
        if quant.get("bits") is None
        else QuantSpec(int(quant["bits"]), bool(quant.get("per_channel", True)))
    )


def init_from(model: nn.Module, path: str | Path) -> None:
    """Load the weights of checkpoint ``path`` into ``model`` (``--resume-from``: fine-tuning)."""
    load_state(model, read_checkpoint(path)["model"], f"--resume-from {path}")


def load_model(path: str | Path) -> LoadedModel:
    """Rebuild the model of a checkpoint (``best.pt`` or ``last.pt``) and load its weights."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    spec = ModelSpec.from_dict(ckpt["spec"])
    model = spec.build()
    load_state(model, ckpt["model"], f"checkpoint {path}")
    qat = quant_spec(ckpt.get("config", {}))
    if qat is not None:  # a QAT run: its forward is the quantized one
        enable_qat(model, qat)
    model.eval()
    return LoadedModel(
        model=model,
        config=ckpt["config"],
        spec=spec,
        data=DataInfo.from_dict(ckpt["data"]),
        path=path,
        kind=ckpt.get("kind", "best"),
        epoch=int(ckpt.get("epoch", 0)),
        step=int(ckpt.get("step", 0)),
        metrics=ckpt.get("metrics", {}),
    )


# --- random number generators -------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Every global RNG a run touches, in weights_only-loadable types."""
    algo, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "algo": algo,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },  # fmt: skip
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["algo"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
