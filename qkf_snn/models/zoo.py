"""Registered QKFormer sizes: the official configurations (exact parameter counts) and this
project's audio and video encoders. Each size is a small function over one family builder."""

from __future__ import annotations

from typing import Any

from qkf_snn.models.qkformer import QKFormer, QKFormerConfig
from qkf_snn.models.registry import register_model


def _create(defaults: dict[str, Any], overrides: dict[str, Any]) -> QKFormer:
    return QKFormer(QKFormerConfig.from_dict({**defaults, **overrides}))


def seed_sizes(embed_dims: int, num_heads: list[int] | int, depths: list[int] | int) -> dict[str, Any]:
    """Translate the original research code's flags (``--embed-dims 192 --num-heads 2 4 6
    --depths 2 4 8``): ``embed_dims`` is the last stage's width, stages are E/4, E/2, E."""
    dims = (embed_dims // 4, embed_dims // 2, embed_dims)
    heads = (num_heads,) * 3 if isinstance(num_heads, int) else tuple(num_heads)
    if isinstance(depths, int):  # the official scripts give one total: 1 / 1 / rest
        depths = (1, 1, depths - 2)
    return {"dims": dims, "heads": heads, "depths": tuple(depths)}


# --- official configurations (github zhouchenlin2096/QKFormer) -------------------------------------
_CIFAR = dict(
    in_channels=3,
    input_size=(32, 32),
    dims=(96, 192, 384),
    depths=(1, 1, 2),
    heads=8,
    attention=("qkta", "qkta", "ssa"),
    stem="cifar",
    downsample_pool_first=False,
    time_steps=4,
)
_IMAGENET = dict(
    in_channels=3,
    num_classes=1000,
    input_size=(224, 224),
    depths=(1, 2, 7),
    attention=("qkta", "qkta", "ssa"),
    stem="imagenet",
    downsample_pool_first=True,
    time_steps=4,
)


@register_model
def hst_4_384_cifar10(**kw: Any) -> QKFormer:
    """HST-4-384 on CIFAR-10: 6,706,234 parameters."""
    return _create({**_CIFAR, "num_classes": 10}, kw)


@register_model
def hst_4_384_cifar100(**kw: Any) -> QKFormer:
    """HST-4-384 on CIFAR-100: 6,740,884 parameters."""
    return _create({**_CIFAR, "num_classes": 100}, kw)


@register_model
def hst_10_384_imagenet(**kw: Any) -> QKFormer:
    """HST-10-384 on ImageNet: 16,473,688 parameters."""
    return _create({**_IMAGENET, "dims": (96, 192, 384), "heads": 6}, kw)


@register_model
def hst_10_512_imagenet(**kw: Any) -> QKFormer:
    """HST-10-512 on ImageNet: 29,079,336 parameters."""
    return _create({**_IMAGENET, "dims": (128, 256, 512), "heads": 8}, kw)


@register_model
def hst_10_768_imagenet(**kw: Any) -> QKFormer:
    """HST-10-768 on ImageNet: 64,962,760 parameters."""
    return _create({**_IMAGENET, "dims": (192, 384, 768), "heads": 12}, kw)


@register_model
def hst_2_256_cifar10dvs(**kw: Any) -> QKFormer:
    """HST-2-256 on CIFAR10-DVS: 1,504,138 parameters (stem to 128, one QKTA and one SSA block)."""
    defaults = dict(
        in_channels=2,
        num_classes=10,
        input_size=(128, 128),
        dims=(128, 256),
        depths=(1, 1),
        heads=16,
        attention=("qkta", "ssa"),
        mlp_ratio=1.0,
        stem="dvs",
        downsample_pool_first=False,
        time_steps=16,
    )
    return _create(defaults, kw)


# --- this project's encoders ----------------------------------------------------------------------
# Audio: single-channel log-mel windows, one per time step; channel attention (QKCA) in stages 1-2
# and full attention (SSA) in stage 3, as in the original research code. Video: RGB frames, one per
# time step; token attention (QKTA) in stages 1-2, SSA in stage 3. Both use the ÷4 ImageNet stem.
_AUDIO = dict(in_channels=1, input_size=(64, 64), attention=("qkca", "qkca", "ssa"), stem="imagenet",
              downsample_pool_first=True, time_steps=4)  # fmt: skip
_VIDEO = dict(in_channels=3, input_size=(64, 64), attention=("qkta", "qkta", "ssa"), stem="imagenet",
              downsample_pool_first=True, time_steps=4)  # fmt: skip
_SIZES = {
    # The seed's flags: --embed-dims 192 --num-heads 2 4 6 --depths 2 4 8.
    "small": seed_sizes(192, [2, 4, 6], [2, 4, 8]),
    # Few minutes per epoch on a 2-core CPU for a few hundred clips: demo and tests.
    "tiny": {"dims": (16, 32, 64), "heads": (1, 2, 2), "depths": (1, 1, 1), "mlp_ratio": 2.0},
}


@register_model
def qkf_audio_small(**kw: Any) -> QKFormer:
    """Audio encoder at the seed's size (48/96/192, heads 2/4/6, depths 2/4/8)."""
    return _create({**_AUDIO, **_SIZES["small"]}, kw)


@register_model
def qkf_audio_tiny(**kw: Any) -> QKFormer:
    """Audio encoder small enough for CPU demos (16/32/64, one block per stage)."""
    return _create({**_AUDIO, **_SIZES["tiny"]}, kw)


@register_model
def qkf_video_small(**kw: Any) -> QKFormer:
    """Video encoder at the seed's size (48/96/192, heads 2/4/6, depths 2/4/8)."""
    return _create({**_VIDEO, **_SIZES["small"]}, kw)


@register_model
def qkf_video_tiny(**kw: Any) -> QKFormer:
    """Video encoder small enough for CPU demos (16/32/64, one block per stage)."""
    return _create({**_VIDEO, **_SIZES["tiny"]}, kw)


# --- deployable forms: what `qkf export nir` can express -------------------------------------------
# Q-K attention only (SSA's Q·(Kᵀ·V) multiplies three signals, which NIR cannot express), max-pool
# over spikes (an OR: SumPool2d + Threshold) instead of over analog BN outputs, and the default zero
# reset (NIR neurons reset to v_reset). BN folds into the preceding conv at export. SSA's stage gets
# the other Q-K form, so each encoder keeps both: audio QKCA/QKCA/QKTA (token selection after channel
# gating), video QKTA/QKTA/QKCA (a global channel gate after token selection). Sizes are unchanged.
_DEPLOY = {"pool": "spike"}
_AUDIO_DEPLOY = {**_AUDIO, **_DEPLOY, "attention": ("qkca", "qkca", "qkta")}
_VIDEO_DEPLOY = {**_VIDEO, **_DEPLOY, "attention": ("qkta", "qkta", "qkca")}


@register_model
def qkf_audio_small_deploy(**kw: Any) -> QKFormer:
    """Deployable audio encoder (NIR-exportable) at the seed's size."""
    return _create({**_AUDIO_DEPLOY, **_SIZES["small"]}, kw)


@register_model
def qkf_audio_tiny_deploy(**kw: Any) -> QKFormer:
    """Deployable audio encoder (NIR-exportable), CPU demo size."""
    return _create({**_AUDIO_DEPLOY, **_SIZES["tiny"]}, kw)


@register_model
def qkf_video_small_deploy(**kw: Any) -> QKFormer:
    """Deployable video encoder (NIR-exportable) at the seed's size."""
    return _create({**_VIDEO_DEPLOY, **_SIZES["small"]}, kw)


@register_model
def qkf_video_tiny_deploy(**kw: Any) -> QKFormer:
    """Deployable video encoder (NIR-exportable), CPU demo size."""
    return _create({**_VIDEO_DEPLOY, **_SIZES["tiny"]}, kw)


# The largest configuration of benchmarks/fit_search.py's grid (audio and AV, 32x32 and 64x64 inputs,
# widths, depths, MLP ratio) that passes every checked Loihi 2 constraint once its weights are 8-bit:
# 61 of 128 cores, 119.5 M of 120 M synapses per chip. The input size is part of the fit (synapses
# grow with it; at 64x64 this model fails); one more block or the next width exceeds 120 M synapses.
# docs/deployment.md has the search, its grid and the binding constraints.
_LOIHI2 = {"dims": (80, 160, 320), "heads": (1, 2, 2), "depths": (1, 1, 3), "mlp_ratio": 4.0}


@register_model
def qkf_audio_loihi2_deploy(**kw: Any) -> QKFormer:
    """Deployable audio encoder, the largest that fits one Loihi 2 chip at 8-bit weights (1x32x32)."""
    return _create({**_AUDIO_DEPLOY, "input_size": (32, 32), **_LOIHI2}, kw)
