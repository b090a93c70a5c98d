"""Synthetic sets: real layouts, determinism, knobs, and class-dependent content per modality."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from qkf_snn.datasets import DATASETS, prepare, synthesize
from qkf_snn.datasets.classes import AVE_CLASSES, US8K_CLASSES
from qkf_snn.datasets.synth import PRESETS, WRITERS
from qkf_snn.datasets.synth.audio import clip_audio
from qkf_snn.datasets.synth.knobs import SynthKnobs, label_sequence, resolve_knobs
from qkf_snn.datasets.synth.video import clip_video
from qkf_snn.errors import UserError


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_same_seed_same_bytes(dataset: str, tmp_path: Path, knobs: dict) -> None:
    args = dict(clips=6, **{**knobs[dataset], "seconds": 0.5})
    a = _digest(synthesize(dataset, tmp_path / "a", seed=11, **args))
    b = _digest(synthesize(dataset, tmp_path / "b", seed=11, **args))
    c = _digest(synthesize(dataset, tmp_path / "c", seed=12, **args))
    assert a == b
    assert a != c


def test_crema_release_layout(crema_raw: Path) -> None:
    wavs = sorted(p.stem for p in (crema_raw / "AudioWAV").iterdir())
    flvs = sorted(p.stem for p in (crema_raw / "VideoFlash").iterdir())
    assert wavs == flvs and len(wavs) == 36 and len(set(wavs)) == 36
    assert Counter(n.split("_")[2] for n in wavs) == dict.fromkeys(
        ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"], 6
    )
    assert {n.split("_")[0] for n in wavs} <= {str(1001 + a) for a in range(5)}
    assert (crema_raw / "VideoFlash" / f"{wavs[0]}.flv").read_bytes()[:3] == b"FLV"


def test_ave_layout_and_text_files(ave_raw: Path) -> None:
    lines = (ave_raw / "Annotations.txt").read_text().splitlines()
    assert lines[0] == "Category&VideoID&Quality&StartTime&EndTime" and len(lines) == 21
    ids = [ln.split("&")[1] for ln in lines[1:]]
    assert all(len(i) == 11 for i in ids) and sorted(p.stem for p in (ave_raw / "AVE").iterdir()) == sorted(
        ids
    )
    assert {ln.split("&")[0] for ln in lines[1:]} == set(AVE_CLASSES[:4])
    meta = json.loads((ave_raw / "synth.json").read_text())
    assert meta["complete"] and meta["knobs"]["audio_pairs"] and meta["class_names"] == list(AVE_CLASSES[:4])


def test_urbansound_layout(us8k_raw: Path) -> None:
    wavs = sorted((us8k_raw / "Dataset_v3_sound").rglob("*.wav"))
    jpgs = sorted((us8k_raw / "Dataset_v3_vision").rglob("*.jpg"))
    assert [w.stem for w in wavs] == [j.stem for j in jpgs] and len(wavs) == 30
    for w in wavs:
        fs_id, class_id, _occ, _slice = w.stem.split("-")
        assert US8K_CLASSES[int(class_id)] == w.parent.name


def test_knob_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown synth knob\(s\) loudness \(known: .*audio_noise"):
        synthesize("crema", tmp_path / "x", clips=2, seed=0, loudness=3)
    with pytest.raises(UserError, match=r"synth knob audio_missing=1.5: must be within \[0, 1\]"):
        synthesize("crema", tmp_path / "x", clips=2, seed=0, audio_missing=1.5)
    with pytest.raises(UserError, match="synth knob classes: unknown ave class"):
        synthesize("ave", tmp_path / "x", clips=2, seed=0, classes=["Bark", "Kazoo"])
    with pytest.raises(UserError, match="unknown dataset 'kinetics'"):
        synthesize("kinetics", tmp_path / "x", clips=2, seed=0)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(UserError, match="not empty and not a synthetic set"):
        synthesize("crema", tmp_path / "mine", clips=2, seed=0)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_class_subset_by_name(tmp_path: Path) -> None:
    out = synthesize("ave", tmp_path / "a", clips=4, seed=0, classes=["Cat", "Bark"], seconds=1.0)
    assert {ln.split("&")[0] for ln in (out / "Annotations.txt").read_text().splitlines()[1:]} == {
        "Bark",
        "Cat",
    }


def test_label_sequence_imbalance() -> None:
    # Weights 3^(-k/3): 1, 0.69, 0.48, 0.33 of 120 clips, rounded by largest remainder.
    assert np.bincount(label_sequence(120, 4, 3.0, np.random.default_rng(0))).tolist() == [48, 33, 23, 16]
    assert np.bincount(label_sequence(10, 4, 1.0, np.random.default_rng(0))).tolist() == [3, 3, 2, 2]


def _pitch(wave: np.ndarray, sample_rate: int = 22050) -> float:
    """Frequency of the strongest spectral peak (the fundamental of the class tone)."""
    return float(np.argmax(np.abs(np.fft.rfft(wave))) * sample_rate / wave.size)


def test_audio_pairs_share_a_signature_and_video_tells_them_apart() -> None:
    knobs = resolve_knobs("ave", dict(audio_noise=0.0, audio_missing=0.0, video_noise=0.0, video_missing=0.0))
    knobs = SynthKnobs(**{**knobs.__dict__, "distractors": 0, "video_contrast": 1.0})
    rng = lambda s: np.random.default_rng(s)  # noqa: E731
    semis = [12 * np.log2(_pitch(clip_audio(c, 8, knobs, rng(c))) / 200) for c in range(4)]
    # Class k sounds at signature k // 2, four semitones apart (plus a jitter of at most 1.3 semitones).
    assert abs(semis[0] - semis[1]) < 1.5 and abs(semis[2] - semis[3]) < 1.5
    assert abs(semis[0] - semis[2]) > 2.5
    frames = [clip_video(c, 1, knobs, rng(c), background=np.zeros(3, np.float32))[0] for c in range(2)]
    colours = [f.reshape(-1, 3)[f.reshape(-1, 3).sum(1) > 100].mean(0) for f in frames]
    assert np.abs(colours[0] - colours[1]).max() > 100  # while classes 0 and 1 look different


def test_missing_knobs_remove_the_class_cue() -> None:
    knobs = resolve_knobs(
        "crema", dict(audio_missing=1.0, video_missing=1.0, audio_noise=0.0, video_noise=0.0)
    )
    rng = np.random.default_rng(0)
    assert np.abs(clip_audio(0, 6, knobs, rng)).max() == 0.0
    frames = clip_video(0, 3, knobs, rng, background=np.full(3, 20.0, np.float32))
    assert frames.max() < 30  # background only


def test_every_registered_dataset_has_a_synth_writer_and_preset() -> None:
    assert set(WRITERS) == set(DATASETS) and set(PRESETS) == set(DATASETS)


@pytest.mark.parametrize("layout", ["videos", "image", "frames"])
def test_folder_synth_layouts_prepare_whole(layout: str, tmp_path: Path, small: dict) -> None:
    raw = synthesize(
        "folder", tmp_path / "raw", clips=9, seed=2, classes=3, seconds=0.5, fps=6, layout=layout
    )
    classes = ["bell", "bird", "car"]
    assert json.loads((raw / "synth.json").read_text())["class_names"] == classes
    media = {"videos": raw, "image": raw / "image", "frames": raw / "frames"}[layout]
    assert sorted(p.name for p in media.iterdir() if p.is_dir()) == classes
    report = prepare("folder", raw, tmp_path / "cache", clip_seconds=0.5, **small)
    assert (report.found, report.prepared, report.skipped) == (9, 9, 0)
    with pytest.raises(UserError, match="synth knob layout='release': folder writes videos, image, frames"):
        synthesize("folder", tmp_path / "x", clips=2, seed=0, layout="release")
