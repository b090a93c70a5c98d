"""Knobs of the synthetic generators and the default preset of each dataset."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import numpy as np

from qkf_snn.datasets.classes import AVE_CLASSES, CREMA_EMOTIONS, US8K_CLASSES
from qkf_snn.errors import UserError


@dataclass(frozen=True)
class SynthKnobs:
    """Everything that shapes a synthetic set (see ``synthesize`` for the presets)."""

    classes: int | tuple[str, ...] = 0  # first k canonical classes, or names; 0: the preset's count
    seconds: float = 2.0  # clip duration
    sample_rate: int = 16000  # audio rate written
    fps: int = 8  # video frame rate
    width: int = 64  # frame size (4:3 like the real clips, so readers crop to square)
    height: int = 48
    audio_noise: float = 0.3  # white-noise std relative to the class sound's amplitude
    video_noise: float = 0.1  # pixel-noise std as a fraction of full scale
    audio_missing: float = 0.2  # chance a clip's audio has no class cue at all (noise only)
    video_missing: float = 0.3  # chance a clip's video has no class shape
    audio_pairs: bool = False  # classes 2k and 2k+1 share one audio signature (AVE preset)
    audio_pair_cue: float = 0.0  # amplitude of a faint tone that still tells 2k+1 from 2k
    video_contrast: float = 1.0  # opacity of the class shape over the background
    distractors: int = 0  # random palette shapes per video (look like class shapes)
    imbalance: float = 1.0  # most / least frequent class (geometric in between)
    actors: int = 8  # crema: speakers (each shifts pitch a little)
    layout: str = "release"  # crema: "release" (AudioWAV/ + VideoFlash/) or "frames" (pre-extracted);
    # folder: "videos" (<class>/<clip>.mp4), "image" or "frames" (audio/ with image/ or frames/)
    frames_per_clip: int = 3  # crema and folder "frames" layouts: jpgs per clip
    duplicates: int = 2  # ave: IDs listed twice in trainSet.txt, as in the real files
    slices: int = 4  # urbansound8k-av: at most this many slices per freesound recording
    mixed_rates: bool = True  # urbansound8k-av, folder: audio at 16 / 22.05 / 44.1 kHz (us8k: mono or stereo)
    val_fraction: float = 0.1  # ave lists and crema frames layout: share of val and of test
    test_fraction: float = 0.1


PRESETS: dict[str, dict] = {
    # Both modalities informative, audio the stronger one (as on the real CREMA-D).
    "crema": dict(
        classes=6, seconds=2.0, audio_noise=0.4, video_noise=0.08, audio_missing=0.3, video_missing=0.4
    ),
    # Audio strong but only up to pairs of classes; video exact but faint, cluttered and often absent.
    "ave": dict(
        classes=8,
        seconds=3.0,
        sample_rate=22050,
        audio_pairs=True,
        audio_noise=0.3,
        audio_missing=0.1,
        video_noise=0.2,
        video_contrast=0.6,
        distractors=2,
        video_missing=0.5,
        imbalance=3.0,
    ),
    # Still image + short sound, both strong (published accuracies are 97-99 %).
    "urbansound8k-av": dict(
        classes=10,
        seconds=1.0,
        width=80,
        height=60,
        audio_noise=0.2,
        video_noise=0.05,
        audio_missing=0.05,
        video_missing=0.05,
    ),
    # Your own data: a few everyday classes, both modalities clear, recordings at mixed rates.
    "folder": dict(
        classes=4,
        seconds=2.0,
        layout="videos",
        audio_noise=0.3,
        video_noise=0.08,
        audio_missing=0.2,
        video_missing=0.2,
    ),
}
# The layouts a dataset's writer knows (crema: the release files or pre-extracted frames).
LAYOUTS: dict[str, tuple[str, ...]] = {
    "crema": ("release", "frames"),
    "folder": ("videos", "image", "frames"),
}
CANONICAL: dict[str, tuple[str, ...]] = {
    "crema": tuple(CREMA_EMOTIONS),
    "ave": AVE_CLASSES,
    "urbansound8k-av": US8K_CLASSES,
    "folder": ("bell", "bird", "car", "dog", "drum", "flute", "rain", "siren"),  # synthetic, sorted
}


def resolve_knobs(dataset: str, overrides: dict) -> SynthKnobs:
    """Preset of ``dataset`` with ``overrides`` applied; unknown or out-of-range knobs are UserErrors."""
    names = {f.name for f in fields(SynthKnobs)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise UserError(f"unknown synth knob(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    given = {k: v for k, v in overrides.items() if v is not None}
    defaults = SynthKnobs()
    for name, value in given.items():
        given[name] = _typed(name, value, getattr(defaults, name))
    values = {**PRESETS[dataset], **given}
    knobs = dataclasses.replace(SynthKnobs(), **values)
    for name in ("audio_missing", "video_missing", "val_fraction", "test_fraction"):
        if not 0 <= getattr(knobs, name) <= 1:
            raise UserError(f"synth knob {name}={getattr(knobs, name)}: must be within [0, 1]")
    for name in ("seconds", "sample_rate", "fps", "width", "height", "actors", "frames_per_clip", "slices"):
        if getattr(knobs, name) <= 0:
            raise UserError(f"synth knob {name}={getattr(knobs, name)}: must be positive")
    for name in ("audio_noise", "video_noise", "audio_pair_cue", "distractors", "duplicates"):
        if getattr(knobs, name) < 0:
            raise UserError(f"synth knob {name}={getattr(knobs, name)}: must be >= 0")
    if not 0 <= knobs.video_contrast <= 1:
        raise UserError(f"synth knob video_contrast={knobs.video_contrast}: must be within [0, 1]")
    if dataset in LAYOUTS and knobs.layout not in LAYOUTS[dataset]:
        raise UserError(f"synth knob layout={knobs.layout!r}: {dataset} writes {', '.join(LAYOUTS[dataset])}")
    if knobs.imbalance < 1:
        raise UserError(f"synth knob imbalance={knobs.imbalance}: must be >= 1 (most / least frequent)")
    if knobs.width % 2 or knobs.height % 2:
        raise UserError(f"synth knobs width/height {knobs.width}x{knobs.height}: must be even (yuv420p)")
    return knobs


def _typed(name: str, value: object, default: object) -> object:
    """``value`` if it has the type of the knob's default (an int is a fine float), else one line."""
    if name == "classes":  # a count or class names
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"synth knob classes={value!r}: give a number of classes or a list of class names")
    want = type(default)
    if want is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, want) and (want is bool or not isinstance(value, bool)):
        return value
    kind = {bool: "true or false", int: "an integer", float: "a number", str: "a word"}[want]
    raise UserError(f"synth knob {name}={value!r}: must be {kind} (default {default!r})")


def class_names(dataset: str, knobs: SynthKnobs) -> list[str]:
    """The classes a synthetic set uses, in canonical order."""
    canonical = CANONICAL[dataset]
    if isinstance(knobs.classes, tuple):
        unknown = [c for c in knobs.classes if c not in canonical]
        if unknown:
            raise UserError(
                f"synth knob classes: unknown {dataset} class(es) {', '.join(map(repr, unknown))}"
            )
        return [c for c in canonical if c in knobs.classes]
    k = knobs.classes or len(canonical)
    if not 2 <= k <= len(canonical):
        raise UserError(f"synth knob classes={k}: {dataset} has 2 to {len(canonical)} classes")
    return list(canonical[:k])


def label_sequence(n: int, n_classes: int, imbalance: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels with class frequencies falling geometrically from 1 to 1/imbalance, shuffled."""
    weights = imbalance ** (-np.arange(n_classes) / max(n_classes - 1, 1))
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    # Largest remainders get the leftover clips, ties to the smaller class index (deterministic).
    for c in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[c] += 1
    return rng.permutation(np.repeat(np.arange(n_classes), counts))
