"""Audio-visual fusion of two QKFormer encoders.

Each encoder yields per-step features ``[T, B, C]`` (the integer stream averaged over tokens);
audio step t and video step t cover the same time span. Fusion:
- ``concat``: one Linear over [audio ‖ video] features per step;
- ``sum``: the sum of the two modality heads' logits.
Per-modality heads (``audio_head``, ``video_head``) always exist: they give per-modality accuracy
of an AV model and the unimodal auxiliary losses used for modality balancing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from qkf_snn.errors import UserError
from qkf_snn.models.classifier import Batch
from qkf_snn.models.qkformer import QKFormer
from qkf_snn.models.registry import create_model, register_model

FUSIONS: tuple[str, ...] = ("concat", "sum")


class AVClassifier(nn.Module):
    modalities: tuple[str, ...] = ("audio", "video")

    def __init__(self, audio: QKFormer, video: QKFormer, num_classes: int, *, fusion: str = "concat") -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise UserError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        self.audio, self.video, self.fusion = audio, video, fusion
        ca, cv = audio.num_features, video.num_features
        self.audio_head = nn.Linear(ca, num_classes)
        self.video_head = nn.Linear(cv, num_classes)
        self.fusion_head = nn.Linear(ca + cv, num_classes) if fusion == "concat" else None
        for head in (self.audio_head, self.video_head, self.fusion_head):
            if head is not None:
                nn.init.trunc_normal_(head.weight, std=0.02)
                nn.init.zeros_(head.bias)

    def features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step features of each modality, ``[T, B, Ca]`` and ``[T, B, Cv]``."""
        fa = self.audio.forward_features(batch["audio"])
        fv = self.video.forward_features(batch["video"])
        if fa.shape[0] != fv.shape[0]:
            raise ValueError(f"audio has {fa.shape[0]} time steps but video has {fv.shape[0]}")
        return fa, fv

    def steps_all(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-step logits ``[T, B, K]``: fused (``logits``) and per modality."""
        fa, fv = self.features(batch)
        la, lv = self.audio_head(fa), self.video_head(fv)
        if self.fusion_head is not None:
            fused = self.fusion_head(torch.cat([fa, fv], dim=-1))
        else:
            fused = la + lv
        return {"logits": fused, "audio": la, "video": lv}

    def forward_all(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {k: v.mean(0) for k, v in self.steps_all(batch).items()}

    def forward_steps(self, batch: Batch) -> torch.Tensor:
        return self.steps_all(batch)["logits"]

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.forward_steps(batch).mean(0)

    def example_batch(self, batch: int = 1) -> Batch:
        return {
            "audio": self.audio.example_input(batch, sequence=True),
            "video": self.video.example_input(batch, sequence=True),
        }


def _create_av(size: str, kw: dict[str, Any]) -> AVClassifier:
    """``audio_*`` / ``video_*`` overrides go to one encoder, the rest to both."""
    num_classes = kw.pop("num_classes", 10)
    fusion = kw.pop("fusion", "concat")
    audio_kw = {k.removeprefix("audio_"): v for k, v in kw.items() if k.startswith("audio_")}
    video_kw = {k.removeprefix("video_"): v for k, v in kw.items() if k.startswith("video_")}
    shared = {k: v for k, v in kw.items() if not k.startswith(("audio_", "video_"))}
    audio = create_model(f"qkf_audio_{size}", **{**shared, **audio_kw, "num_classes": 0})
    video = create_model(f"qkf_video_{size}", **{**shared, **video_kw, "num_classes": 0})
    return AVClassifier(audio, video, num_classes, fusion=fusion)


@register_model
def qkf_av_tiny(**kw: Any) -> AVClassifier:
    """Audio-visual model of two tiny encoders (CPU demo size)."""
    return _create_av("tiny", kw)


@register_model
def qkf_av_small(**kw: Any) -> AVClassifier:
    """Audio-visual model of two encoders at the seed's size."""
    return _create_av("small", kw)
