"""A modality that was not asked for is never required: each reader prepares the layouts that hold only
one modality (the research code's frames-only video data and AudioWAV/-only audio data among them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qkf_snn.datasets import CachedAVDataset, prepare, synthesize
from qkf_snn.datasets import clip as clip_module
from qkf_snn.datasets.cache import CacheIndex, open_array
from qkf_snn.datasets.crema import scan as crema_scan
from qkf_snn.datasets.urbansound import scan as us8k_scan
from qkf_snn.errors import UserError

QKF = Path(sys.executable).with_name("qkf")
TINY = ["--time-steps", "4", "--image-size", "32", "--n-mels", "32", "--audio-width", "16", "--no-progress"]


def _qkf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(QKF), *args], capture_output=True, text=True, timeout=300)


def _by_clip(cache: Path, modality: str) -> dict[str, np.ndarray]:
    index = CacheIndex.load(cache)
    array = open_array(cache, index, modality)
    return {c["id"]: np.array(array[i]) for i, c in enumerate(index.clips)}


@pytest.fixture(scope="module")
def frames_raw(tmp_path_factory: pytest.TempPathFactory, knobs: dict) -> Path:
    """The research code's video data: <split>/<clip>/frame_XXXX.jpg, plus the wavs (removed per test)."""
    root = tmp_path_factory.mktemp("frames") / "raw"
    return synthesize("crema", root, clips=18, seed=4, layout="frames", **knobs["crema"])


def test_frames_without_audio_prepare_as_video_with_their_split_folders(
    frames_raw: Path, tmp_path: Path, small: dict
) -> None:
    full = tmp_path / "av"  # the same frames prepared with their audio, for comparison
    prepare("crema", frames_raw, full, clip_seconds=1.0, **small)
    raw = Path(shutil.copytree(frames_raw, tmp_path / "raw"))
    for wav in raw.glob("*/*.wav"):
        wav.unlink()
    on_disk = {s: sorted(p.name for p in (raw / s).iterdir() if p.is_dir()) for s in ("train", "val", "test")}

    cache = tmp_path / "video"
    done = _qkf("data", "prepare", "crema", "--raw", str(raw), "--out", str(cache), "--modalities", "video",
                "--clip-seconds", "1", *TINY)  # fmt: skip
    assert done.returncode == 0, done.stderr
    n = {s: len(v) for s, v in on_disk.items()}
    assert done.stdout.startswith(
        f"crema: found 18, prepared 18, skipped 0 (train {n['train']}, val {n['val']}, test {n['test']}; "
        "split folders)"
    )
    index = CacheIndex.load(cache)
    assert index.modalities == ["video"] and list(index.arrays) == ["video"]
    assert {s: sorted(c["id"] for c in index.clips if c["split"] == s) for s in on_disk} == on_disk
    # Frames spread over the clip's span exactly as when the audio gave the duration.
    video, reference = _by_clip(cache, "video"), _by_clip(full, "video")
    assert video.keys() == reference.keys()
    assert all(np.array_equal(video[k], reference[k]) for k in video)
    assert len(CachedAVDataset(cache, "train", modalities=("video",))) == n["train"]

    # Asking for audio on that root still skips every clip, and the reason says what to do.
    done = _qkf("data", "prepare", "crema", "--raw", str(raw), "--out", str(tmp_path / "av2"),
                "--clip-seconds", "1", *TINY)  # fmt: skip
    assert done.returncode == 2 and "no usable clip (18 found, all skipped" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    report = (tmp_path / "av2" / "report.json").read_text()
    assert "no audio beside the frames" in report and "--modalities video prepares the frames alone" in report


def test_wavs_in_split_folders_prepare_as_audio_without_frames(frames_raw: Path, tmp_path: Path) -> None:
    raw = Path(shutil.copytree(frames_raw, tmp_path / "raw"))
    for clip_dir in [p for p in raw.glob("*/*") if p.is_dir()]:
        shutil.rmtree(clip_dir)
    cache = tmp_path / "audio"
    done = _qkf("data", "prepare", "crema", "--raw", str(raw), "--out", str(cache), "--modalities", "audio",
                "--clip-seconds", "1", *TINY)  # fmt: skip
    assert done.returncode == 0, done.stderr
    index = CacheIndex.load(cache)
    assert index.split_name == "folders" and index.modalities == ["audio"]
    assert {c["id"]: c["split"] for c in index.clips} == {p.stem: p.parent.name for p in raw.glob("*/*.wav")}


def test_audio_wav_alone_prepares_as_audio(crema_raw: Path, crema_cache: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(crema_raw / "AudioWAV", raw / "AudioWAV")
    cache = tmp_path / "audio"
    done = _qkf("data", "prepare", "crema", "--raw", str(raw), "--out", str(cache), "--modalities", "audio",
                "--clip-seconds", "1", *TINY)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("crema: found 36, prepared 36, skipped 0 (")
    audio, reference = _by_clip(cache, "audio"), _by_clip(crema_cache, "audio")
    assert audio.keys() == reference.keys()
    assert all(np.array_equal(audio[k], reference[k]) for k in audio)
    # Both modalities asked for: one line that names the missing folder and the way out.
    done = _qkf("data", "prepare", "crema", "--raw", str(raw), "--out", str(tmp_path / "av"), *TINY)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        f"error: CREMA-D root {raw}: found AudioWAV/ but not VideoFlash/ (--modalities audio uses AudioWAV/ "
        "alone; expected AudioWAV/ and VideoFlash/ (CREMA-D release), or train/ val/ test/ folders of "
        "<clip>/frame_XXXX.jpg)"
    )


def test_video_flash_alone_prepares_as_video(crema_raw: Path, tmp_path: Path, small: dict) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(crema_raw / "VideoFlash", raw / "VideoFlash")
    report = prepare("crema", raw, tmp_path / "video", clip_seconds=1.0, modalities=("video",), **small)
    assert (report.found, report.prepared, report.skipped) == (36, 36, 0)
    with pytest.raises(UserError, match="found VideoFlash/ but not AudioWAV/ \\(--modalities video uses"):
        crema_scan(raw, {"modalities": ("audio", "video")})


def test_ave_reads_only_the_track_asked_for(
    ave_raw: Path, ave_cache: Path, tmp_path: Path, small: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_audio(*args, **kwargs):
        raise AssertionError("audio decoded for a video-only cache")

    monkeypatch.setattr(clip_module, "read_audio", no_audio)
    report = prepare("ave", ave_raw, tmp_path / "video", clip_seconds=2.0, modalities=("video",), **small)
    assert report.skipped == 2 and report.prepared == len(CacheIndex.load(ave_cache).clips)  # 2 duplicates
    video, reference = _by_clip(tmp_path / "video", "video"), _by_clip(ave_cache, "video")
    assert video.keys() == reference.keys()
    assert all(np.array_equal(video[k], reference[k]) for k in video)
    monkeypatch.undo()

    def no_video(*args, **kwargs):
        raise AssertionError("video decoded for an audio-only cache")

    monkeypatch.setitem(clip_module.VIDEO_READERS, "container", no_video)
    monkeypatch.setattr(clip_module, "read_video_seconds", no_video)
    report = prepare("ave", ave_raw, tmp_path / "audio", clip_seconds=2.0, modalities=("audio",), **small)
    assert report.prepared == len(CacheIndex.load(ave_cache).clips)


@pytest.mark.parametrize(
    ("keep", "modality"), [("Dataset_v3_sound", "audio"), ("Dataset_v3_vision", "video")]
)
def test_urbansound_one_folder_prepares_its_modality(
    us8k_raw: Path, tmp_path: Path, small: dict, keep: str, modality: str
) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(us8k_raw / keep, raw / keep)
    cache = tmp_path / "cache"
    report = prepare("urbansound8k-av", raw, cache, clip_seconds=0.5, modalities=(modality,), **small)
    assert (report.found, report.prepared, report.skipped) == (30, 30, 0)
    assert CacheIndex.load(cache).modalities == [modality]
    other = "Dataset_v3_vision" if modality == "audio" else "Dataset_v3_sound"
    with pytest.raises(UserError, match=f"missing {other}/ \\(expected"):
        us8k_scan(raw, {"modalities": ("audio", "video")})
