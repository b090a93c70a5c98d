"""Synthetic bring-your-own set in the ``folder`` layouts: videos with sound, or audio paired with
images or frame folders (the ``layout`` knob: ``videos``, ``image`` or ``frames``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qkf_snn.datasets.synth.audio import clip_audio
from qkf_snn.datasets.synth.knobs import LAYOUTS as KNOWN_LAYOUTS
from qkf_snn.datasets.synth.knobs import SynthKnobs, class_names, label_sequence
from qkf_snn.datasets.synth.video import clip_video
from qkf_snn.datasets.synth.writers import write_jpg, write_video, write_wav
from qkf_snn.errors import UserError

LAYOUTS = KNOWN_LAYOUTS["folder"]
RATES = (16000, 22050, 44100)


def write(out: Path, clips: int, seed: int, knobs: SynthKnobs) -> list[str]:
    """Write ``clips`` clips named ``clip_NNNN`` in class folders; returns the class names used."""
    if knobs.layout not in LAYOUTS:
        raise UserError(f"synth knob layout={knobs.layout!r}: folder writes {', '.join(LAYOUTS)}")
    names = class_names("folder", knobs)
    rng = np.random.default_rng(seed)
    labels = label_sequence(clips, len(names), knobs.imbalance, rng).tolist()
    n_frames = max(1, round(knobs.seconds * knobs.fps))
    for i, c in enumerate(labels):
        crng = np.random.default_rng([seed, i])
        # Own recordings come at any rate: mixed_rates spreads them over 16 / 22.05 / 44.1 kHz.
        rate = RATES[i % len(RATES)] if knobs.mixed_rates else knobs.sample_rate
        wave = clip_audio(c, len(names), knobs, crng, sample_rate=rate)
        frames = clip_video(c, n_frames, knobs, crng)
        stem, label = f"clip_{i:04d}", names[c]
        if knobs.layout == "videos":
            write_video(out / label / f"{stem}.mp4", frames, knobs.fps, wave, rate)
            continue
        write_wav(out / "audio" / label / f"{stem}.wav", wave, rate)
        if knobs.layout == "image":
            write_jpg(out / "image" / label / f"{stem}.jpg", frames[len(frames) // 2])
        else:
            k = knobs.frames_per_clip
            for j, f in enumerate(((np.arange(k) + 0.5) * len(frames) / k).astype(int).tolist()):
                write_jpg(out / "frames" / label / stem / f"frame_{j + 1}.jpg", frames[f])
    return names
