"""Synthetic UrbanSound8K-AV: slices of freesound-like recordings, one wav and one jpg per slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qkf_snn.datasets.classes import US8K_CLASSES
from qkf_snn.datasets.synth.audio import clip_audio
from qkf_snn.datasets.synth.knobs import SynthKnobs, class_names, label_sequence
from qkf_snn.datasets.synth.video import clip_video
from qkf_snn.datasets.synth.writers import write_jpg, write_wav
from qkf_snn.datasets.urbansound import SOUND, VISION

RATES = (16000, 22050, 44100)


def write(out: Path, clips: int, seed: int, knobs: SynthKnobs) -> list[str]:
    """Write ``clips`` slices grouped into recordings; returns the class names used."""
    names = class_names("urbansound8k-av", knobs)
    rng = np.random.default_rng(seed)
    counts = np.bincount(label_sequence(clips, len(names), knobs.imbalance, rng), minlength=len(names))
    fs_ids = rng.choice(np.arange(10_000, 200_000), size=clips, replace=False).tolist()
    i = 0
    for c, count in enumerate(counts.tolist()):
        left = count
        while left > 0:
            # One recording: its slices share a pitch offset, a scene colour, a sample rate and channels.
            k = min(left, int(rng.integers(1, knobs.slices + 1)))
            fs_id, shift = fs_ids[i], float(rng.uniform(-1.0, 1.0))
            scene = rng.uniform(10, 70, 3).astype(np.float32)
            rate = int(rng.choice(RATES)) if knobs.mixed_rates else knobs.sample_rate
            stereo = knobs.mixed_rates and bool(rng.integers(2))
            for s in range(k):
                crng = np.random.default_rng([seed, i])
                name = f"{fs_id}-{US8K_CLASSES.index(names[c])}-0-{s}"
                wave = clip_audio(c, len(names), knobs, crng, sample_rate=rate, shift=shift)
                write_wav(
                    out / SOUND / names[c] / f"{name}.wav",
                    np.stack([wave, 0.9 * wave], 1) if stereo else wave,
                    rate,
                )
                image = clip_video(c, 1, knobs, crng, background=scene)[0]
                write_jpg(out / VISION / names[c] / f"{name}.jpg", image)
                i += 1
            left -= k
    return names
