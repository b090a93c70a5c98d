"""Decoding one file: wav (soundfile), audio tracks and video frames of flv/mp4 (PyAV), jpg (Pillow).

Every failure is a :class:`MediaError` whose message is the reason written to the prepare report, so
one unreadable file skips one clip instead of stopping the run.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image, ImageOps, UnidentifiedImageError

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}
# Containers whose last decoded frame ends before this share of the declared duration are truncated.
TRUNCATION_TOLERANCE = 0.9


class MediaError(Exception):
    """A file that cannot be used; ``str(err)`` is the reason shown in the report, ``path`` the file."""

    def __init__(self, reason: str, path: Path | None = None) -> None:
        super().__init__(reason)
        self.path = path


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform of ``path`` resampled to ``sample_rate`` (wav via soundfile, else PyAV)."""
    if not path.is_file():
        raise MediaError(f"missing audio file {path.name}", path)
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        return _read_soundfile(path, sample_rate)
    return _read_container_audio(path, sample_rate)


def _read_soundfile(path: Path, sample_rate: int) -> np.ndarray:
    if path.stat().st_size == 0:
        raise MediaError("audio file is empty (0 bytes)", path)
    declared = _wav_declared_bytes(path) if path.suffix.lower() == ".wav" else None
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise MediaError(f"cannot decode audio: {_one_line(err)}", path) from err
    if declared is not None and declared[0] > declared[1]:
        # libsndfile silently returns what is there; a short data chunk means a cut-off download.
        raise MediaError(
            f"wav truncated: header declares {declared[0]} data bytes, file holds {declared[1]}", path
        )
    mono = np.ascontiguousarray(wave.mean(axis=1), dtype=np.float32)
    return resample(mono, sr, sample_rate) if sr != sample_rate and mono.size else mono


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono float32 resampling with FFmpeg's swresample (fast for any rate pair, e.g. 44.1 -> 16 kHz)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
    frame = av.AudioFrame.from_ndarray(wave[None], format="flt", layout="mono")
    frame.sample_rate = rate
    chunks = [f.to_ndarray().reshape(-1) for f in (*resampler.resample(frame), *resampler.resample(None))]
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


def _wav_declared_bytes(path: Path) -> tuple[int, int] | None:
    """(declared, present) size of the RIFF data chunk, or None when the header does not say."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF are "unknown" in streamed wavs: nothing to compare against.
                if chunk_size in (0, 0xFFFFFFFF):
                    return None
                return chunk_size, size - pos - 8
            pos += 8 + chunk_size + (chunk_size & 1)
    return None


def _read_container_audio(path: Path, sample_rate: int) -> np.ndarray:
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"no audio track in {path.name}", path)
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks = []
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except av.FFmpegError as err:
        raise MediaError(f"cannot decode audio track: {_one_line(err)}", path) from err
    if not chunks:
        return np.zeros(0, np.float32)
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


def read_video_frames(path: Path, times: Sequence[float], size: int) -> np.ndarray:
    """RGB frames shown at each of ``times`` (seconds), centre-cropped and resized: uint8 [N, S, S, 3].

    Frames are decoded in order (FLV seeking is unreliable) and only the selected ones are converted.
    """
    if not path.is_file():
        raise MediaError(f"missing video file {path.name}", path)
    if path.stat().st_size == 0:
        raise MediaError("video file is empty (0 bytes)", path)
    wanted = sorted(range(len(times)), key=lambda i: times[i])
    out: list[np.ndarray | None] = [None] * len(times)
    last_time = -1.0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"no video track in {path.name}", path)
            stream = container.streams.video[0]
            declared = _declared_seconds(container, stream)
            period = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
            prev = None
            k = 0
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else last_time + max(period, 1e-3)
                # A target earlier than this frame shows the previous one (or this one if it is first).
                while k < len(wanted) and times[wanted[k]] < t:
                    shown = prev if prev is not None else frame
                    out[wanted[k]] = fit_square(shown.to_image(), size)
                    k += 1
                prev = frame  # converted to RGB only if a target picks it
                last_time = t
                if k == len(wanted):
                    break
    except av.FFmpegError as err:
        raise MediaError(f"cannot decode video: {_one_line(err)}", path) from err
    if prev is None:
        raise MediaError(f"no video frames decoded from {path.name}", path)
    if k < len(wanted) and declared and last_time + 2 * period < TRUNCATION_TOLERANCE * declared:
        raise MediaError(
            f"video truncated: frames stop at {last_time + period:.2f} s of {declared:.2f} s", path
        )
    for i in wanted[k:]:
        out[i] = fit_square(prev.to_image(), size)
    return np.stack(out)  # type: ignore[arg-type]


def read_video_seconds(path: Path) -> float:
    """The duration a video container declares (0.0 when it does not say)."""
    if not path.is_file():
        raise MediaError(f"missing video file {path.name}", path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"no video track in {path.name}", path)
            return _declared_seconds(container, container.streams.video[0])
    except av.FFmpegError as err:
        raise MediaError(f"cannot decode video: {_one_line(err)}", path) from err


def _declared_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def read_image(path: Path, size: int) -> np.ndarray:
    """An image file centre-cropped and resized to uint8 [S, S, 3]."""
    if not path.is_file():
        raise MediaError(f"missing image {path.name}", path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated jpg fails here, not later in a worker
            return fit_square(img, size)
    except UnidentifiedImageError as err:  # its message repeats the full path: say it shorter
        raise MediaError(f"cannot read image {path.name}: not an image Pillow can identify", path) from err
    except OSError as err:
        raise MediaError(f"cannot read image {path.name}: {_one_line(err)}", path) from err


def fit_square(img: Image.Image, size: int) -> np.ndarray:
    """Centre crop to a square and resize (antialiased) to ``size``: uint8 [S, S, 3]."""
    img = img.convert("RGB")
    return np.asarray(ImageOps.fit(img, (size, size), method=Image.Resampling.BILINEAR), dtype=np.uint8)


def _one_line(err: BaseException) -> str:
    # PyAV errors carry the file name (already in the report) after the message: keep the message only.
    text = getattr(err, "strerror", None) if isinstance(err, av.FFmpegError) else None
    return " ".join(str(text or err).split()) or type(err).__name__
