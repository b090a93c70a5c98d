"""From a run configuration and a dataset to the exact ``create_model`` call, and back.

The model a run trains is recorded as a :class:`ModelSpec` (registry name, modality, the keyword
arguments given to ``create_model``), so a checkpoint rebuilds it without the recipe or the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from qkf_snn.errors import UserError
from qkf_snn.models import QKFormer, UniModalClassifier, create_model
from qkf_snn.models.fusion import FUSIONS, AVClassifier
from qkf_snn.models.zoo import seed_sizes
from qkf_snn.training.balancing import unimodal_terms
from qkf_snn.training.config import TrainConfig, _plain
from qkf_snn.training.terms import LossTerm


@dataclass
class DataInfo:
    """What the model must match in the data: classes, time steps, per-step input shapes."""

    num_classes: int
    class_names: list[str]
    time_steps: int
    audio_shape: tuple[int, ...]  # [1, F, W] of one time step
    video_shape: tuple[int, ...]  # [3, H, W]

    @classmethod
    def of(cls, dataset: Any) -> DataInfo:
        return cls(
            num_classes=int(dataset.num_classes),
            class_names=list(dataset.class_names),
            time_steps=int(dataset.time_steps),
            audio_shape=tuple(int(s) for s in dataset.audio_shape),
            video_shape=tuple(int(s) for s in dataset.video_shape),
        )

    def to_dict(self) -> dict[str, Any]:
        return _plain(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataInfo:
        return cls(
            **{**data, "audio_shape": tuple(data["audio_shape"]), "video_shape": tuple(data["video_shape"])}
        )


@dataclass
class ModelSpec:
    """``create_model(name, **kwargs)``, wrapped in :class:`UniModalClassifier` unless ``av``."""

    name: str
    modality: str  # audio | video | av
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        model = create_model(self.name, **self.kwargs)
        if self.modality == "av":
            if not isinstance(model, AVClassifier):
                raise UserError(
                    f"model {self.name!r} is not an audio-visual model (use qkf_av_* for --modality av)"
                )
            return model
        if not isinstance(model, QKFormer):
            raise UserError(f"model {self.name!r} is not a single encoder (use --modality av for it)")
        return UniModalClassifier(model, self.modality)

    def to_dict(self) -> dict[str, Any]:
        return _plain({"name": self.name, "modality": self.modality, "kwargs": self.kwargs})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(name=data["name"], modality=data["modality"], kwargs=dict(data.get("kwargs", {})))


def model_spec(cfg: TrainConfig, info: DataInfo) -> ModelSpec:
    """The model of ``cfg`` sized for ``info``: classes, time steps and input sizes from the data,
    widths/depths/heads/neuron from the config, then ``model.overrides`` last."""
    m = cfg.model
    kw: dict[str, Any] = {"num_classes": info.num_classes, "time_steps": info.time_steps}
    if m.embed_dims is not None:
        kw["dims"] = seed_sizes(m.embed_dims, 1, 3)["dims"]
    for key in ("dims", "depths", "heads", "mlp_ratio"):
        if getattr(m, key) is not None:
            kw[key] = getattr(m, key)
    if m.neuron:
        kw["neuron"] = dict(m.neuron)
    if cfg.modality == "audio":
        kw["input_size"] = info.audio_shape[1:]
    elif cfg.modality == "video":
        kw["input_size"] = info.video_shape[1:]
    else:
        kw["audio_input_size"], kw["video_input_size"] = info.audio_shape[1:], info.video_shape[1:]
        kw["fusion"] = m.fusion
        if FUSIONS[m.fusion].cross is not None:  # the stage after which the streams meet
            kw["fusion_stage"] = m.fusion_stage
    kw.update(m.overrides)
    return ModelSpec(cfg.model_name, cfg.modality, _plain(kw))


def check_model_fits(model: nn.Module, info: DataInfo, source: str) -> None:
    """One line if ``model`` cannot read this data (channels, classes)."""
    encoders = {"audio": model.audio, "video": model.video} if isinstance(model, AVClassifier) else {}
    if isinstance(model, UniModalClassifier):
        encoders = {model.modality: model.encoder}
    for modality, encoder in encoders.items():
        shape = info.audio_shape if modality == "audio" else info.video_shape
        if encoder.config.in_channels != shape[0]:
            raise UserError(
                f"{source}: the {modality} encoder reads {encoder.config.in_channels} channels, "
                f"the data has {shape[0]}"
            )
    head = model.audio_head if isinstance(model, AVClassifier) else model.encoder.head
    classes = getattr(head, "out_features", None)
    if classes is not None and classes != info.num_classes:
        raise UserError(f"{source}: the model predicts {classes} classes, the data has {info.num_classes}")


# The loss terms a configuration asks for, one factory per entry: (config, built model) -> terms, added
# to the objective in this order, before any passed to train(). A new built-in term is one entry here.
TERM_FACTORIES: list[Callable[[TrainConfig, nn.Module], list[LossTerm]]] = [unimodal_terms]


def loss_terms(cfg: TrainConfig, model: nn.Module) -> list[LossTerm]:
    """The built-in loss terms of a run (see terms.py)."""
    return [term for factory in TERM_FACTORIES for term in factory(cfg, model)]
