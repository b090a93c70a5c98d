"""Audio-visual fusion of two QKFormer encoders, and the registry of fusion methods.

Each encoder yields per-step features ``[T, B, C]`` (the integer stream averaged over tokens);
audio step t and video step t cover the same time span. Fusion methods (:data:`FUSIONS`):
- ``concat``: one Linear over [audio ‖ video] features per step;
- ``sum``: the sum of the two modality heads' logits;
- ``qk``: spiking cross-modal Q-K attention after one stage (``fusion_stage``): both encoders run
  stage by stage, each modality's Q-spike mask gates the other's K (see
  :class:`CrossModalQKAttention`), the remaining stages run per modality, then a concat head.
Per-modality heads (``audio_head``, ``video_head``) always exist: they give per-modality accuracy
of an AV model and the unimodal auxiliary losses used for modality balancing.

A :class:`Fusion` entry holds all of one method: its heads, its logits, its NIR read-out and the
functional operations the profiler's audit should expect. Training, the NIR exporter and the
profiler ask the entry; none of them tests a method's name, so adding a method is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from qkf_snn.errors import UserError
from qkf_snn.models.blocks import ATTENTION_THRESHOLD, ConvBNSpike, Mul, Sum
from qkf_snn.models.classifier import Batch
from qkf_snn.models.neurons import NeuronConfig
from qkf_snn.models.qkformer import QKFormer
from qkf_snn.models.registry import create_model, register_model
from qkf_snn.models.utils import init_head


class CrossModalQKAttention(nn.Module):
    """Spiking cross-modal Q-K attention between the audio and video streams of one stage.

    QKFormer's channel attention (QKCA) with the query taken from the *other* modality. For audio
    ``a [T, B, Ca, Na]`` and video ``v [T, B, Cv, Nv]``::

        M_a→v = SN_θ=0.5( Σ_n Q_a→v[n] )      Q_a→v = CBS(a): Ca → Cv channels, spikes
        M_v→a = SN_θ=0.5( Σ_n Q_v→a[n] )      Q_v→a = CBS(v): Cv → Ca channels, spikes
        v' = v + CBS_proj( M_a→v ⊙ K_v ),       a' = a + CBS_proj( M_v→a ⊙ K_a )

    Each mask is one bit per channel and time step, so the cost is O(N·C) per modality (linear in
    tokens) and the two streams may have different token grids: a spectrogram token and an image
    token at the same grid position mean nothing to each other, so masks gate channels, not tokens.
    All products are AND of spikes; the outputs stay integer streams, as after any QKFormer block.
    """

    def __init__(self, dim_audio: int, dim_video: int, *, neuron: NeuronConfig) -> None:
        super().__init__()
        self.q_audio = ConvBNSpike(dim_audio, dim_video, dims=1, neuron=neuron)  # audio asks video
        self.q_video = ConvBNSpike(dim_video, dim_audio, dims=1, neuron=neuron)  # video asks audio
        self.k_audio = ConvBNSpike(dim_audio, dim_audio, dims=1, neuron=neuron)
        self.k_video = ConvBNSpike(dim_video, dim_video, dims=1, neuron=neuron)
        self.q_sum = Sum(3)  # over tokens of [T, B, C, N]
        self.attn_lif_audio = neuron.build(threshold=ATTENTION_THRESHOLD)  # mask from audio's Q
        self.attn_lif_video = neuron.build(threshold=ATTENTION_THRESHOLD)  # mask from video's Q
        self.mask_audio = Mul()  # video's mask ⊙ K_audio
        self.mask_video = Mul()  # audio's mask ⊙ K_video
        self.proj_audio = ConvBNSpike(dim_audio, dim_audio, dims=1, bias=True, neuron=neuron)
        self.proj_video = ConvBNSpike(dim_video, dim_video, dims=1, bias=True, neuron=neuron)

    def masks(self, a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Channel masks from each modality's Q (tokens flattened): ``[T, B, Cv, 1]`` from audio,
        ``[T, B, Ca, 1]`` from video."""
        return self.attn_lif_audio(self.q_sum(self.q_audio(a))), self.attn_lif_video(
            self.q_sum(self.q_video(v))
        )

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if a.shape[0] != v.shape[0]:
            raise ValueError(f"audio has {a.shape[0]} time steps but video has {v.shape[0]}")
        a_flat, v_flat = a.flatten(3), v.flatten(3)
        from_audio, from_video = self.masks(a_flat, v_flat)
        a_out = self.proj_audio(self.mask_audio(from_video, self.k_audio(a_flat)))
        v_out = self.proj_video(self.mask_video(from_audio, self.k_video(v_flat)))
        return a + a_out.reshape(a.shape), v + v_out.reshape(v.shape)


class AVClassifier(nn.Module):
    modalities: tuple[str, ...] = ("audio", "video")

    def __init__(
        self,
        audio: QKFormer,
        video: QKFormer,
        num_classes: int,
        *,
        fusion: str = "concat",
        fusion_stage: int = -1,
    ) -> None:
        super().__init__()
        method = fusion_method(fusion)
        self.audio, self.video, self.fusion = audio, video, fusion
        ca, cv = audio.num_features, video.num_features
        self.audio_head = nn.Linear(ca, num_classes)
        self.video_head = nn.Linear(cv, num_classes)
        self.fusion_head = nn.Linear(ca + cv, num_classes) if method.fusion_head else None
        self.fusion_stage: int | None = None
        self.cross: nn.Module | None = None
        if method.cross is not None:
            stages = len(audio.stages)
            if len(video.stages) != stages:
                raise UserError(f"fusion {fusion!r} needs encoders with as many stages (audio {stages}, "
                                f"video {len(video.stages)})")  # fmt: skip
            if not -stages <= fusion_stage < stages:
                raise UserError(f"fusion_stage {fusion_stage}: the encoders have {stages} stages")
            self.fusion_stage = fusion_stage % stages
            dim_a, dim_v = audio.config.dims[self.fusion_stage], video.config.dims[self.fusion_stage]
            self.cross = method.cross(dim_a, dim_v, audio.config.neuron)
        for head in (self.audio_head, self.video_head, self.fusion_head):
            if head is not None:
                init_head(head)

    @property
    def method(self) -> Fusion:
        """This model's entry in :data:`FUSIONS` (looked up, not stored: the module stays picklable)."""
        return FUSIONS[self.fusion]

    @property
    def probe_heads(self) -> bool:
        """True when the unimodal heads are not part of the fused logits, so that they can train as
        linear probes on detached features (a fusion head); False when they are the fusion (sum)."""
        return self.fusion_head is not None

    def features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step features of each modality, ``[T, B, Ca]`` and ``[T, B, Cv]``."""
        if self.cross is None:
            fa = self.audio.forward_features(batch["audio"])
            fv = self.video.forward_features(batch["video"])
            if fa.shape[0] != fv.shape[0]:
                raise ValueError(f"audio has {fa.shape[0]} time steps but video has {fv.shape[0]}")
            return fa, fv
        a, v = self.audio.time_major(batch["audio"]), self.video.time_major(batch["video"])
        if a.shape[0] != v.shape[0]:
            raise ValueError(f"audio has {a.shape[0]} time steps but video has {v.shape[0]}")
        for i, (stage_a, stage_v) in enumerate(zip(self.audio.stages, self.video.stages, strict=True)):
            a, v = stage_a(a), stage_v(v)
            if i == self.fusion_stage:
                a, v = self.cross(a, v)
        return a.flatten(3).mean(3), v.flatten(3).mean(3)

    def steps_all(
        self, batch: Batch, *, parts: bool = False, detach_heads: bool = False
    ) -> dict[str, torch.Tensor]:
        """Per-step logits ``[T, B, K]``: fused (``logits``) and per modality.

        ``parts``: also each modality's additive share of the fused logits (``audio_part``,
        ``video_part``: the fusion head's columns for that modality plus half its bias; for ``sum`` the
        modality logits), which OGM-GE compares. ``detach_heads``: the unimodal heads read detached
        features, so training them (linear probes) tells what each encoder holds without steering it;
        ignored for ``sum``, whose heads are the fusion."""
        fa, fv = self.features(batch)
        probe = detach_heads and self.probe_heads
        la = self.audio_head(fa.detach() if probe else fa)
        lv = self.video_head(fv.detach() if probe else fv)
        return {"audio": la, "video": lv, **self.method.logits(self, fa, fv, la, lv, parts)}

    def forward_all(
        self, batch: Batch, *, parts: bool = False, detach_heads: bool = False
    ) -> dict[str, torch.Tensor]:
        return {
            k: v.mean(0) for k, v in self.steps_all(batch, parts=parts, detach_heads=detach_heads).items()
        }

    def forward_steps(self, batch: Batch) -> torch.Tensor:
        return self.steps_all(batch)["logits"]

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.forward_steps(batch).mean(0)

    def example_batch(self, batch: int = 1) -> Batch:
        return {
            "audio": self.audio.example_input(batch, sequence=True),
            "video": self.video.example_input(batch, sequence=True),
        }


# --- the fusion methods ----------------------------------------------------------------------------------
# (model, audio features, video features, audio head logits, video head logits, parts) -> "logits"
# and, with parts, "audio_part" / "video_part" (each modality's additive share of the logits)
LogitsFn = Callable[[AVClassifier, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, bool], dict]
# model -> (W_a, W_v, b) with per-step logits = W_a·mean_tokens(a) + W_v·mean_tokens(v) + b
ReadoutFn = Callable[[AVClassifier], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Fusion:
    """One fusion method, all of it.

    ``fusion_head``: a Linear over [audio ‖ video] features (the unimodal heads are then separate:
    auxiliary losses or linear probes); ``cross``: the block ``(dim_audio, dim_video, neuron)`` that the
    two streams pass through after stage ``fusion_stage`` (None: the encoders run apart);
    ``logits``: the fused logits from the features and head logits (see ``LogitsFn``);
    ``readout``: the logits as one linear map of the token-mean features, which is the method's NIR
    form (None: no NIR form; the exporter reports it); the ``cross`` block's own NIR form is its
    class's converter in ``hardware/nir/export.py``, as for every block;
    ``audit``: the arithmetic this method does outside counted modules, ``(container class, torch
    op) -> (kind, note)``, which the profiler's audit attributes instead of reporting it unattributed.
    """

    summary: str
    logits: LogitsFn
    readout: ReadoutFn | None
    fusion_head: bool = True
    cross: Callable[[int, int, NeuronConfig], nn.Module] | None = None
    audit: dict[tuple[type, str], tuple[str, str]] = field(default_factory=dict)


def _head_logits(model: AVClassifier, fa, fv, la, lv, parts: bool) -> dict[str, torch.Tensor]:
    out = {"logits": model.fusion_head(torch.cat([fa, fv], dim=-1))}
    if parts:  # the fusion head's columns for each modality plus half its bias (OGM-GE compares them)
        w, b = model.fusion_head.weight, model.fusion_head.bias / 2
        ca = fa.shape[-1]
        out["audio_part"] = F.linear(fa, w[:, :ca], b)
        out["video_part"] = F.linear(fv, w[:, ca:], b)
    return out


def _head_readout(model: AVClassifier) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ca, wf = model.audio.num_features, model.fusion_head.weight
    return wf[:, :ca], wf[:, ca:], model.fusion_head.bias


def _sum_logits(model: AVClassifier, fa, fv, la, lv, parts: bool) -> dict[str, torch.Tensor]:
    return {"logits": la + lv, **({"audio_part": la, "video_part": lv} if parts else {})}


def _sum_readout(model: AVClassifier) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # audio_head(a) + video_head(v) = [W_a ‖ W_v]·[a ‖ v] + (b_a + b_v)
    a, v = model.audio_head, model.video_head
    return a.weight, v.weight, a.bias.detach().float() + v.bias.detach().float()


FUSIONS: dict[str, Fusion] = {
    "concat": Fusion("one Linear over [audio ‖ video] features per step", _head_logits, _head_readout),
    "sum": Fusion(
        "the sum of the two modality heads' logits",
        _sum_logits,
        _sum_readout,
        fusion_head=False,
        audit={(AVClassifier, "add"): ("fusion", "sum fusion of the per-modality logits")},
    ),
    "qk": Fusion(
        "spiking cross-modal Q-K attention after stage fusion_stage, then a concat head",
        _head_logits,
        _head_readout,
        cross=lambda dim_a, dim_v, neuron: CrossModalQKAttention(dim_a, dim_v, neuron=neuron),
        audit={
            (CrossModalQKAttention, "add"): (
                "residual",
                "residual addition of the cross-modal attention branch into each integer stream",
            )
        },
    ),
}


def fusion_method(name: str) -> Fusion:
    """The registered fusion ``name``, or the one-line error listing the others."""
    if name not in FUSIONS:
        raise UserError(f"unknown fusion {name!r}; choose one of {', '.join(FUSIONS)}")
    return FUSIONS[name]


def _create_av(size: str, kw: dict[str, Any]) -> AVClassifier:
    """``audio_*`` / ``video_*`` overrides go to one encoder, the rest to both."""
    num_classes = kw.pop("num_classes", 10)
    fusion = kw.pop("fusion", "concat")
    fusion_stage = kw.pop("fusion_stage", -1)
    audio_kw = {k.removeprefix("audio_"): v for k, v in kw.items() if k.startswith("audio_")}
    video_kw = {k.removeprefix("video_"): v for k, v in kw.items() if k.startswith("video_")}
    shared = {k: v for k, v in kw.items() if not k.startswith(("audio_", "video_"))}
    audio = create_model(f"qkf_audio_{size}", **{**shared, **audio_kw, "num_classes": 0})
    video = create_model(f"qkf_video_{size}", **{**shared, **video_kw, "num_classes": 0})
    return AVClassifier(audio, video, num_classes, fusion=fusion, fusion_stage=fusion_stage)


@register_model
def qkf_av_tiny(**kw: Any) -> AVClassifier:
    """Audio-visual model of two tiny encoders (CPU demo size)."""
    return _create_av("tiny", kw)


@register_model
def qkf_av_small(**kw: Any) -> AVClassifier:
    """Audio-visual model of two encoders at the seed's size."""
    return _create_av("small", kw)


@register_model
def qkf_av_tiny_deploy(**kw: Any) -> AVClassifier:
    """Deployable (NIR-exportable) audio-visual model of two tiny deployable encoders."""
    return _create_av("tiny_deploy", kw)


@register_model
def qkf_av_small_deploy(**kw: Any) -> AVClassifier:
    """Deployable (NIR-exportable) audio-visual model at the seed's size."""
    return _create_av("small_deploy", kw)
