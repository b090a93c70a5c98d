"""Decode one :class:`ClipRecord` into the arrays the cache stores (the only place that decodes)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qkf_snn.datasets.features import FeatureParams, fit_length, log_mel_steps, step_times
from qkf_snn.datasets.media import MediaError, read_audio, read_image, read_video_frames, read_video_seconds
from qkf_snn.datasets.records import ClipRecord

MIN_AUDIO_SECONDS = 0.05  # shorter than a few STFT windows: nothing to learn from, likely broken


@dataclass
class ClipArrays:
    """Decoded clip: audio log-mel float32 [T, 1, F, W] and frames uint8 [T, 3, S, S] (or None)."""

    audio: np.ndarray | None
    video: np.ndarray | None
    seconds: float  # duration of the used span of the source audio


def decode_clip(record: ClipRecord, params: FeatureParams) -> ClipArrays:
    """Decode, crop, tile and featurise one clip; raises :class:`MediaError` with the reason."""
    sr = params.sample_rate
    wants_audio = "audio" in params.modalities
    if wants_audio and record.audio is None:
        raise MediaError("no audio file for this clip", record.path)
    if "video" in params.modalities and not record.video:
        raise MediaError("no video file for this clip", record.path)
    if wants_audio:
        with _blame(record.audio):
            wave = read_audio(record.audio, sr)
            if wave.size == 0:
                raise MediaError("audio is empty (0 samples)")
        total = wave.size / sr
    else:  # video only: the pictures set the clock, and a clip needs no audio track
        with _blame(record.video[0]):
            total = _visual_seconds(record, params)
        wave = None
    start = record.start
    end = total if record.end is None else min(record.end, total)
    if end - start < MIN_AUDIO_SECONDS:
        if record.end is not None:
            what = "audio" if wants_audio else "video"
            reason = f"event span {record.start:g}-{record.end:g} s is outside the {what} ({total:.2f} s)"
            raise MediaError(reason, record.path)
        raise MediaError(f"audio too short ({total:.3f} s < {MIN_AUDIO_SECONDS} s)", record.audio)
    first, last = round(start * sr), round(end * sr)
    seconds = (last - first) / sr
    audio = None if wave is None else log_mel_steps(fit_length(wave[first:last], params.span_samples), params)
    video = None
    if "video" in params.modalities:
        times = start + step_times(seconds, params)
        with _blame(record.video[0]):
            frames = VIDEO_READERS[record.video_kind](record.video, times, total, params.image_size)
        video = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    return ClipArrays(audio=audio, video=video, seconds=seconds)


@contextlib.contextmanager
def _blame(path: Path) -> Iterator[None]:
    """Attach the file being decoded to a MediaError that does not name one yet."""
    try:
        yield
    except MediaError as err:
        if err.path is None:
            err.path = path
        raise


def _visual_seconds(record: ClipRecord, params: FeatureParams) -> float:
    # Frame folders and stills have no clock of their own: they are spread over the usual span.
    if record.video_kind == "container":
        return read_video_seconds(record.video[0]) or params.clip_seconds
    return params.clip_seconds


def _container(paths: tuple[Path, ...], times: np.ndarray, total: float, size: int) -> np.ndarray:
    return read_video_frames(paths[0], times.tolist(), size)


def _frames(paths: tuple[Path, ...], times: np.ndarray, total: float, size: int) -> np.ndarray:
    # Pre-extracted frames are taken as evenly spread over the whole audio of the clip.
    idx = np.minimum((times / total * len(paths)).astype(int), len(paths) - 1)
    loaded = {i: read_image(paths[i], size) for i in sorted(set(idx.tolist()))}
    return np.stack([loaded[i] for i in idx.tolist()])


def _image(paths: tuple[Path, ...], times: np.ndarray, total: float, size: int) -> np.ndarray:
    # A still image stands for every step.
    return np.repeat(read_image(paths[0], size)[None], len(times), axis=0)


VIDEO_READERS: dict[str, Callable[[tuple[Path, ...], np.ndarray, float, int], np.ndarray]] = {
    "container": _container,
    "frames": _frames,
    "image": _image,
}
