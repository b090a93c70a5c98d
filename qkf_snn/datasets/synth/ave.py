"""Synthetic AVE: ``AVE/<id>.mp4`` (MPEG-4 video + AAC) and the four annotation files, events inside clips."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from qkf_snn.datasets.ave import HEADER, SPLIT_FILES
from qkf_snn.datasets.splits import stratified_split
from qkf_snn.datasets.synth.audio import clip_audio
from qkf_snn.datasets.synth.knobs import SynthKnobs, class_names, label_sequence
from qkf_snn.datasets.synth.video import clip_video
from qkf_snn.datasets.synth.writers import write_mp4

ID_ALPHABET = np.array(list(string.ascii_letters + string.digits + "-_"))


def youtube_ids(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct 11-character YouTube-like IDs."""
    ids: dict[str, None] = {}
    while len(ids) < n:
        ids["".join(rng.choice(ID_ALPHABET, 11))] = None
    return list(ids)


def write(out: Path, clips: int, seed: int, knobs: SynthKnobs) -> list[str]:
    """Write ``clips`` clips with events; returns the class names used."""
    names = class_names("ave", knobs)
    rng = np.random.default_rng(seed)
    labels = label_sequence(clips, len(names), knobs.imbalance, rng).tolist()
    ids = youtube_ids(clips, rng)
    whole = max(1, int(knobs.seconds))
    n_frames = max(1, round(knobs.seconds * knobs.fps))
    lines = []
    for i, (c, vid) in enumerate(zip(labels, ids, strict=True)):
        crng = np.random.default_rng([seed, i])
        # Integer-second event spans as in Annotations.txt, covering at least half the clip.
        start = int(crng.integers(0, whole // 2 + 1))
        end = int(crng.integers(max(start + 1, whole - whole // 2), whole + 1))
        wave = clip_audio(c, len(names), knobs, crng, event=(start, end))
        times = (np.arange(n_frames) + 0.5) / knobs.fps
        frames = clip_video(c, n_frames, knobs, crng, visible=(times >= start) & (times <= end))
        write_mp4(out / "AVE" / f"{vid}.mp4", frames, knobs.fps, wave, knobs.sample_rate)
        lines.append(f"{names[c]}&{vid}&good&{start}&{end}")
    sides = stratified_split(ids, labels, val=knobs.val_fraction, test=knobs.test_fraction, seed=seed)
    (out / "Annotations.txt").write_text("\n".join([HEADER, *lines]) + "\n")
    for side, file in SPLIT_FILES.items():
        chosen = [ln for ln, s in zip(lines, sides, strict=True) if s == side]
        if side == "train":
            chosen += chosen[: knobs.duplicates]  # the real trainSet.txt lists some IDs twice
        (out / file).write_text("".join(ln + "\n" for ln in chosen))
    return names
