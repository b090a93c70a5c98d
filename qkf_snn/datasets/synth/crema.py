"""Synthetic CREMA-D in the release layout (AudioWAV/ + VideoFlash/) or the pre-extracted frames layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qkf_snn.datasets.classes import CREMA_SENTENCES
from qkf_snn.datasets.splits import stratified_split
from qkf_snn.datasets.synth.audio import clip_audio
from qkf_snn.datasets.synth.knobs import SynthKnobs, class_names, label_sequence
from qkf_snn.datasets.synth.video import clip_video
from qkf_snn.datasets.synth.writers import write_flv, write_jpg, write_wav
from qkf_snn.errors import UserError


def write(out: Path, clips: int, seed: int, knobs: SynthKnobs) -> list[str]:
    """Write ``clips`` clips; returns the class names used."""
    emotions = class_names("crema", knobs)
    rng = np.random.default_rng(seed)
    labels = label_sequence(clips, len(emotions), knobs.imbalance, rng)
    per_actor = len(CREMA_SENTENCES)
    if np.bincount(labels).max() > knobs.actors * per_actor:
        raise UserError(
            f"--clips {clips}: more than actors x 12 sentences per emotion (raise the 'actors' knob)"
        )
    # Each actor has a voice (pitch offset) and a look (background): nuisances a speaker split tests.
    shifts = rng.uniform(-1.0, 1.0, knobs.actors)
    backgrounds = rng.uniform(10, 70, (knobs.actors, 3)).astype(np.float32)
    pools = {c: list(rng.permutation(knobs.actors * per_actor)) for c in range(len(emotions))}
    names, waves, videos = [], [], []
    for i, c in enumerate(labels.tolist()):
        k = pools[c].pop()
        actor, sentence = divmod(int(k), per_actor)
        crng = np.random.default_rng([seed, i])
        code, sent = emotions[c], CREMA_SENTENCES[sentence]
        level = crng.choice(["LO", "MD", "HI"]) if sent == "IEO" and code != "NEU" else "XX"
        names.append(f"{1001 + actor}_{sent}_{code}_{level}")
        waves.append(clip_audio(c, len(emotions), knobs, crng, shift=float(shifts[actor])))
        n_frames = max(1, round(knobs.seconds * knobs.fps))
        videos.append(clip_video(c, n_frames, knobs, crng, background=backgrounds[actor]))
    if knobs.layout == "release":
        for name, wave, frames in zip(names, waves, videos, strict=True):
            write_wav(out / "AudioWAV" / f"{name}.wav", wave, knobs.sample_rate)
            write_flv(out / "VideoFlash" / f"{name}.flv", frames, knobs.fps)
    else:
        sides = stratified_split(
            names, labels.tolist(), val=knobs.val_fraction, test=knobs.test_fraction, seed=seed
        )
        for name, wave, frames, side in zip(names, waves, videos, sides, strict=True):
            write_wav(out / side / f"{name}.wav", wave, knobs.sample_rate)
            k = knobs.frames_per_clip
            for j, f in enumerate(((np.arange(k) + 0.5) * len(frames) / k).astype(int).tolist()):
                write_jpg(out / side / name / f"frame_{j:04d}.jpg", frames[f])
    return emotions
