"""Synthetic datasets written in the exact raw layouts of CREMA-D, AVE, UrbanSound8K-AV and ``folder``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from qkf_snn.datasets.synth import ave, crema, folder, urbansound
from qkf_snn.datasets.synth.knobs import PRESETS, SynthKnobs, class_names, resolve_knobs
from qkf_snn.errors import UserError
from qkf_snn.io import atomic_write_json, check_destination, writing

MARKER = "synth.json"
WRITERS: dict[str, Callable[[Path, int, int, SynthKnobs], list[str]]] = {
    "crema": crema.write,
    "ave": ave.write,
    "urbansound8k-av": urbansound.write,
    "folder": folder.write,
}


def synthesize(dataset: str, out: Path, *, clips: int, seed: int, **knobs: object) -> Path:
    """Write a synthetic ``dataset`` of ``clips`` clips under ``out`` in its real raw layout; returns ``out``.

    The same (dataset, clips, seed, knobs) give byte-identical files. ``out`` must be empty, new, or an
    earlier synthetic set (which is replaced). ``out/synth.json`` records what was generated; readers
    ignore it.

    Layouts: ``crema`` writes ``AudioWAV/*.wav`` (16 kHz PCM) + ``VideoFlash/*.flv`` (FLV1), named
    ``<actor>_<sentence>_<emotion>_<level>`` (or, with ``layout="frames"``,
    ``{train,val,test}/<clip>/frame_XXXX.jpg`` with ``<split>/<clip>.wav`` beside); ``ave`` writes
    ``AVE/<id>.mp4`` (MPEG-4 video + stereo AAC) with ``Annotations.txt`` and the three ``&``-separated
    split lists (``duplicates`` IDs twice in trainSet.txt); ``urbansound8k-av`` writes
    ``Dataset_v3_sound/<class>/<fsID>-<classID>-0-<slice>.wav`` (mixed 16/22.05/44.1 kHz, mono or
    stereo) + ``Dataset_v3_vision/<class>/<same>.jpg``; ``folder`` writes ``<class>/clip_NNNN.mp4`` (MPEG-4
    + AAC at mixed rates) or, with ``layout="image"`` / ``"frames"``, ``audio/<class>/<clip>.wav`` with
    ``image/<class>/<clip>.jpg`` / ``frames/<class>/<clip>/frame_N.jpg``.

    Content: class k sounds as a harmonic tone (pitch, one-semitone glide up/down and tremolo rate set
    by k) and looks like a moving shape (form and colour set by k) on a dark background. Each modality
    has its own difficulty:

    ==================  =========================================================================
    knob                meaning (default of the base ``SynthKnobs``)
    ==================  =========================================================================
    classes             number of classes (first k real names) or a list of names (preset's)
    seconds             clip duration (2.0); sample_rate audio rate (16000); fps frame rate (8)
    width, height       frame size (64 x 48, 4:3 like the real videos: readers crop to square)
    audio_noise         white-noise std relative to the tone (0.3)
    video_noise         pixel-noise std, fraction of full scale (0.1)
    audio_missing       chance the audio of a clip has no class tone, only noise (0.2)
    video_missing       chance the video of a clip has no class shape (0.3)
    audio_pairs         classes 2k and 2k+1 share their sound: audio alone knows only the pair (False)
    audio_pair_cue      amplitude of a faint 3.5 kHz tone on odd classes when paired (0.0)
    video_contrast      opacity of the class shape (1.0); distractors: random look-alike shapes (0)
    imbalance           most/least frequent class ratio, geometric in between (1.0)
    actors              crema speakers, each with a pitch offset and background (8)
    layout              crema "release" or "frames"; folder "videos", "image" or "frames";
                        frames_per_clip jpgs per clip in frames layouts (3)
    duplicates          ave IDs repeated in trainSet.txt (2); slices: max slices per recording (4)
    mixed_rates         urbansound8k-av and folder audio at mixed rates (us8k: and channels) (True)
    val_fraction        share of val and of test in the written split lists (0.1 each)
    ==================  =========================================================================

    Presets (what ``qkf data synth`` uses unless knobs are given):

    - ``crema``: 6 emotions, 2 s; audio_noise 0.4, audio_missing 0.3; video_noise 0.08, video_missing
      0.4. Both modalities help, audio more: ceilings (a missing cue leaves chance) about 75 % audio,
      67 % video, 90 % audio-visual (a clip is lost only when both cues are missing).
    - ``ave``: 8 classes, 3 s at 22.05 kHz with an event [start, end] inside (cues only there);
      audio_pairs (audio alone at most ~46 %), audio_missing 0.1, audio_noise 0.3; video exact but weak:
      video_contrast 0.6, 2 distractors, video_noise 0.2, video_missing 0.5 (ceiling ~56 %, slow to
      learn); imbalance 3. Audio is learned first and a naive joint model leans on it, yet the two are
      complementary: audio-visual ceiling ~73 %.
    - ``urbansound8k-av``: 10 classes, 1 s sound + one 80 x 60 image; little noise, 5 % missing per
      modality: everything is easy (as the published 97-99 %).
    - ``folder``: 4 classes (bell, bird, car, dog), 2 s; audio_noise 0.3, video_noise 0.08, 20 % missing
      per modality: a small own set to try the ``folder`` layouts end to end.

    Cost: 200 clips take about 4 s (crema) to 10 s (ave, AAC encoding) to write on one core.
    """
    if dataset not in WRITERS:
        raise UserError(f"unknown dataset {dataset!r} (choose {', '.join(WRITERS)})")
    if clips < 1:
        raise UserError(f"--clips {clips}: must be at least 1")
    resolved = resolve_knobs(dataset, dict(knobs))
    class_names(dataset, resolved)  # unknown class names are refused before anything is written
    out = Path(out)
    existed = out.is_dir()
    _claim(out)
    try:
        with writing(out):
            meta = {"dataset": dataset, "clips": clips, "seed": seed, "knobs": asdict(resolved)}
            atomic_write_json(out / MARKER, {**meta, "complete": False})
            meta["class_names"] = WRITERS[dataset](out, clips, seed, resolved)
            meta["complete"] = True
            meta["prepare_hint"] = {"clip_seconds": resolved.seconds}
            atomic_write_json(out / MARKER, meta)
    except BaseException:
        # A set cut short (refused by a writer, full disk, Ctrl-C) must not pass for a set: remove it.
        shutil.rmtree(out, ignore_errors=True)
        if existed:
            out.mkdir(exist_ok=True)
        raise
    return out


def _claim(out: Path) -> None:
    """Make ``out`` an empty folder, replacing an earlier synthetic set but nothing else."""
    check_destination(out, "--out", "dir")
    if out.is_dir() and any(out.iterdir()):
        marker = out / MARKER
        try:
            ours = marker.is_file() and "dataset" in json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            ours = False
        if not ours:
            raise UserError(f"--out {out}: not empty and not a synthetic set (choose a new or empty folder)")
        shutil.rmtree(out)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)


__all__ = ["PRESETS", "SynthKnobs", "WRITERS", "synthesize"]
