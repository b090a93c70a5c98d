"""Decoding single files, and the reason given for each kind of broken file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qkf_snn.datasets.media import MediaError, read_audio, read_image, read_video_frames
from qkf_snn.datasets.synth.writers import write_flv, write_jpg, write_mp4, write_wav


def _frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frame i is uniformly grey at level 20 * i: which frame was picked can be read back."""
    return np.stack([np.full((h, w, 3), 20 * i, np.uint8) for i in range(n)])


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_wav_is_mixed_to_mono_and_resampled(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    write_wav(tmp_path / "a.wav", np.stack([tone, tone], 1), 44100)
    wave = read_audio(tmp_path / "a.wav", 16000)
    assert wave.dtype == np.float32 and wave.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins: the tone survives resampling


def test_mp4_audio_track_and_frames(tmp_path: Path) -> None:
    wave = 0.3 * np.sin(2 * np.pi * 300 * np.arange(22050) / 22050).astype(np.float32)
    write_mp4(tmp_path / "v.mp4", _frames(8), 8, wave, 22050)
    audio = read_audio(tmp_path / "v.mp4", 16000)
    assert 15000 <= audio.size <= 17500 and np.abs(audio).max() > 0.1
    frames = read_video_frames(tmp_path / "v.mp4", [0.0, 0.51, 0.99, 5.0], 16)
    assert frames.shape == (4, 16, 16, 3) and frames.dtype == np.uint8
    # Frame i covers [i/8, (i+1)/8): 0.51 s shows frame 4; past the end, the last frame.
    assert [int(round(f.mean() / 20)) for f in frames] == [0, 4, 7, 7]


@pytest.mark.parametrize(
    ("name", "damage", "reason"),
    [
        ("a.wav", lambda p: _truncate(p, 0.5), "wav truncated: header declares"),
        ("a.wav", lambda p: _truncate(p, 0.001), "cannot decode audio"),
        ("a.wav", lambda p: p.write_bytes(b""), "audio file is empty (0 bytes)"),
        ("a.wav", lambda p: p.write_bytes(b"RIFF" + b"\x13" * 200), "cannot decode audio"),
        ("v.mp4", lambda p: _truncate(p, 0.6), "cannot decode audio track"),
        ("v.mp4", lambda p: p.write_bytes(b"\x00" * 500), "cannot decode audio track"),
        ("missing.wav", lambda p: None, "missing audio file missing.wav"),
    ],
)
def test_broken_audio_gives_a_reason(tmp_path: Path, name: str, damage, reason: str) -> None:
    write_wav(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    write_mp4(tmp_path / "v.mp4", _frames(8), 8, np.zeros(16000, np.float32), 16000)
    damage(tmp_path / name)
    with pytest.raises(MediaError, match=reason.replace("(", r"\(").replace(")", r"\)")) as info:
        read_audio(tmp_path / name, 16000)
    assert info.value.path == tmp_path / name


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: _truncate(p, 0.5), "video truncated: frames stop at"),
        (lambda p: _truncate(p, 0.02), "cannot decode video: Invalid data found|no video frames decoded"),
        (lambda p: p.write_bytes(b"FLV" + b"\x07" * 300), "cannot decode video|no video"),
        (lambda p: p.write_bytes(b""), "video file is empty"),
    ],
)
def test_broken_flv_gives_a_reason(tmp_path: Path, damage, reason: str) -> None:
    path = tmp_path / "v.flv"
    write_flv(path, _frames(12), 6)
    assert read_video_frames(path, [0.1, 1.9], 16).shape == (2, 16, 16, 3)
    damage(path)
    with pytest.raises(MediaError, match=reason):
        read_video_frames(path, [0.1, 1.0, 1.9], 16)


def test_image_is_centre_cropped_and_broken_images_give_reasons(tmp_path: Path) -> None:
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, :10] = 255  # a white band on the far left: cropped away by the centre square
    write_jpg(tmp_path / "a.jpg", image, quality=95)
    assert read_image(tmp_path / "a.jpg", 30).shape == (30, 30, 3)
    assert read_image(tmp_path / "a.jpg", 30).max() < 40
    _truncate(tmp_path / "a.jpg", 0.5)
    with pytest.raises(MediaError, match="cannot read image a.jpg: .*[Tt]runcated"):
        read_image(tmp_path / "a.jpg", 30)
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg" * 10)
    with pytest.raises(MediaError, match="cannot read image b.jpg: not an image Pillow can identify"):
        read_image(tmp_path / "b.jpg", 30)
