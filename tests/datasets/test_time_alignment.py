"""Audio step t and frame t cover the same time: checked on clips whose content encodes time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qkf_snn.datasets.clip import decode_clip
from qkf_snn.datasets.features import FeatureParams, fit_length, step_times
from qkf_snn.datasets.media import MediaError
from qkf_snn.datasets.records import ClipRecord
from qkf_snn.datasets.synth.writers import write_flv, write_jpg, write_wav

SR, FPS = 16000, 8


@pytest.fixture(scope="module")
def timed_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """2 s: a loud tone only in [1.0, 1.5) s; frame i (of 16) is grey level 15 * i."""
    folder = tmp_path_factory.mktemp("timed")
    t = np.arange(2 * SR) / SR
    wave = np.where((t >= 1.0) & (t < 1.5), 0.8 * np.sin(2 * np.pi * 1000 * t), 0.0).astype(np.float32)
    write_wav(folder / "c.wav", wave, SR)
    write_flv(folder / "c.flv", np.stack([np.full((48, 64, 3), 15 * i, np.uint8) for i in range(16)]), FPS)
    return folder / "c.wav", folder / "c.flv"


def _decode(wav: Path, flv: Path, seconds: float, start: float = 0.0, end: float | None = None):
    params = FeatureParams(time_steps=4, n_mels=32, audio_width=16, image_size=16, clip_seconds=seconds)
    record = ClipRecord("c", "x", wav, (flv,), "container", "g", start=start, end=end)
    arrays = decode_clip(record, params)
    loud = arrays.audio.max(axis=(1, 2)).mean(axis=1)  # loudest band per column, averaged per step (dB)
    frames = [int(round(f.mean() / 15)) for f in arrays.video]
    return arrays, loud > loud.min() + 20, frames


def test_steps_cut_audio_and_frames_over_the_same_span(timed_clip: tuple[Path, Path]) -> None:
    arrays, loud, frames = _decode(*timed_clip, seconds=2.0)
    assert arrays.audio.shape == (4, 1, 32, 16) and arrays.audio.dtype == np.float32
    assert arrays.video.shape == (4, 3, 16, 16) and arrays.video.dtype == np.uint8
    assert loud.tolist() == [False, False, True, False]  # the tone sits in [1.0, 1.5) = step 2
    assert frames == [2, 6, 10, 14]  # frames shown at the step centres 0.25, 0.75, 1.25, 1.75 s


def test_short_clips_are_tiled_in_both_modalities(timed_clip: tuple[Path, Path]) -> None:
    _, loud, frames = _decode(*timed_clip, seconds=4.0)
    assert loud.tolist() == [False, True, False, True]  # steps of 1 s: the 2 s clip plays twice
    assert frames == [4, 12, 4, 12]  # centres 0.5, 1.5, 2.5 -> 0.5, 3.5 -> 1.5


def test_event_crop_uses_the_span_only(timed_clip: tuple[Path, Path]) -> None:
    _, loud, frames = _decode(*timed_clip, seconds=1.0, start=1.0, end=2.0)
    assert loud.tolist() == [True, True, False, False]
    assert frames == [9, 11, 13, 15]
    with pytest.raises(MediaError, match="event span 3-4 s is outside the audio"):
        _decode(*timed_clip, seconds=1.0, start=3.0, end=4.0)


def test_pre_extracted_frames_spread_over_the_clip(timed_clip: tuple[Path, Path], tmp_path: Path) -> None:
    jpgs = []
    for i in range(4):  # four frames of a 2 s clip: frame i stands for [0.5 i, 0.5 (i + 1)) s
        jpgs.append(tmp_path / f"frame_{i:04d}.jpg")
        write_jpg(jpgs[-1], np.full((40, 40, 3), 60 * i, np.uint8))
    params = FeatureParams(time_steps=4, n_mels=32, audio_width=16, image_size=8, clip_seconds=2.0)
    record = ClipRecord("c", "x", timed_clip[0], tuple(jpgs), "frames", "g")
    video = decode_clip(record, params).video
    assert [int(round(f.mean() / 60)) for f in video] == [0, 1, 2, 3]


def test_fit_length_and_step_times() -> None:
    assert fit_length(np.arange(3.0), 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert fit_length(np.arange(9.0), 4).tolist() == [0, 1, 2, 3]
    params = FeatureParams(time_steps=4, clip_seconds=2.0)
    assert step_times(2.0, params).tolist() == [0.25, 0.75, 1.25, 1.75]
    assert step_times(1.0, params).tolist() == [0.25, 0.75, 0.25, 0.75]


def test_empty_audio_is_a_reason(tmp_path: Path, timed_clip: tuple[Path, Path]) -> None:
    write_wav(tmp_path / "e.wav", np.zeros(0, np.float32), SR)
    with pytest.raises(MediaError, match=r"audio is empty \(0 samples\)"):
        _decode(tmp_path / "e.wav", timed_clip[1], seconds=2.0)
