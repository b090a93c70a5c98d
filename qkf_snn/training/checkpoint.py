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
    optimizer, scheduler, scaler, rng, state     (last only) to continue bit for bit

Writes go to a temporary file beside the target, are flushed to disk, then renamed over it: a kill
at any moment leaves the previous complete checkpoint in place.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qkf_snn.errors import UserError, first_line
from qkf_snn.io import atomic_write_bytes
from qkf_snn.models.quant import QuantSpec, enable_qat
from qkf_snn.training.build import DataInfo, ModelSpec

FORMAT = "qkf-checkpoint"
VERSION = 1


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
