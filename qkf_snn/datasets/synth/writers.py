"""Encoders for the synthetic raw files: wav, flv (Sorenson H.263, as CREMA-D), mp4 (MPEG-4 video + AAC
audio track, as AVE), jpg. Single-threaded and without timestamps from the clock, so a seed gives
identical bytes.

AVE's own clips are H.264, but libx264 (as bundled with PyAV) gave different bytes for the same input
in about one process in three; FFmpeg's native MPEG-4 Part 2 encoder is reproducible, and the reader
does not depend on the codec.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image

from qkf_snn.io import atomic_path, atomic_write, atomic_write_bytes

AAC_FRAME = 1024


def write_wav(path: Path, wave: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM wav; ``wave`` is float [n] or [n, channels] in [-1, 1]."""
    # Encoded in memory, then written by Python: a full disk is an OSError naming the file (libsndfile
    # would only say "System error.").
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    atomic_write_bytes(path, buffer.getvalue())


def write_jpg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    atomic_write(path, lambda fh: Image.fromarray(image).save(fh, format="JPEG", quality=quality))


def _video_stream(container: av.container.OutputContainer, codec: str, frames: np.ndarray, fps: int):
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = "yuv420p"
    stream.codec_context.thread_count = 1  # threads can reorder work; one thread is reproducible
    stream.options = {"flags": "+bitexact"}  # FFmpeg's reproducible code paths (as its own tests use)
    return stream


def rgb_to_yuv420p(image: np.ndarray) -> np.ndarray:
    """BT.601 limited-range RGB -> planar yuv420p [H·3/2, W] in numpy.

    Done here rather than by swscale, whose conversion path is chosen per CPU: the same seed should
    give the same bytes on any machine.
    """
    x = image.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    h, w = y.shape
    u = u.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    v = v.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    planes = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)])
    return np.clip(np.round(planes), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def _encode_video(container: av.container.OutputContainer, stream, frames: np.ndarray) -> None:
    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(image), format="yuv420p")
        frame.pts = i
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_flv(path: Path, frames: np.ndarray, fps: int) -> None:
    """FLV with an FLV1 (Sorenson H.263) video track, like the CREMA-D VideoFlash files."""
    with (
        atomic_path(path) as tmp,
        av.open(str(tmp), "w", format="flv", options={"fflags": "+bitexact"}) as container,
    ):
        stream = _video_stream(container, "flv", frames, fps)
        stream.bit_rate = 800_000  # tiny frames: a high rate keeps the class cues readable
        _encode_video(container, stream, frames)


def write_mp4(path: Path, frames: np.ndarray, fps: int, wave: np.ndarray, sample_rate: int) -> None:
    """MP4 with MPEG-4 video and a stereo AAC audio track (the container and audio of the AVE clips)."""
    stereo = wave if wave.ndim == 2 else np.stack([wave, wave], axis=1)
    with (
        atomic_path(path) as tmp,
        av.open(str(tmp), "w", format="mp4", options={"fflags": "+bitexact"}) as container,
    ):
        video = _video_stream(container, "mpeg4", frames, fps)
        video.bit_rate = 800_000  # tiny frames: a high rate keeps the class cues readable
        audio = container.add_stream("aac", rate=sample_rate)
        audio.layout = "stereo"
        audio.codec_context.thread_count = 1
        audio.options = {"aac_coder": "fast"}  # the default two-loop search is most of the writing time
        _encode_video(container, video, frames)
        planar = np.ascontiguousarray(np.clip(stereo, -1, 1).T, dtype=np.float32)
        for start in range(0, planar.shape[1], AAC_FRAME):
            chunk = planar[:, start : start + AAC_FRAME]
            if chunk.shape[1] < AAC_FRAME:  # the encoder wants whole frames: pad the tail with silence
                chunk = np.pad(chunk, ((0, 0), (0, AAC_FRAME - chunk.shape[1])))
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
            frame.sample_rate = sample_rate
            frame.pts = start
            frame.time_base = Fraction(1, sample_rate)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))


# Container -> (format, video codec, audio codec): codecs FFmpeg bundles with PyAV, one per container as
# such files usually come (webm needs VP8 + Opus; the others take MPEG-4 Part 2).
CONTAINERS: dict[str, tuple[str, str, str]] = {
    ".mp4": ("mp4", "mpeg4", "aac"),
    ".mov": ("mov", "mpeg4", "aac"),
    ".mkv": ("matroska", "mpeg4", "libmp3lame"),
    ".avi": ("avi", "mpeg4", "libmp3lame"),
    ".flv": ("flv", "flv", "aac"),
    ".webm": ("webm", "libvpx", "libopus"),
}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def write_video(
    path: Path, frames: np.ndarray, fps: int, wave: np.ndarray | None = None, sample_rate: int = 16000
) -> None:
    """A video file in the container its suffix names (``CONTAINERS``), with a mono audio track when
    ``wave`` is given and none otherwise (a silent film: what "no audio track" looks like)."""
    fmt, vcodec, acodec = CONTAINERS[path.suffix.lower()]
    with (
        atomic_path(path) as tmp,
        av.open(str(tmp), "w", format=fmt, options={"fflags": "+bitexact"}) as container,
    ):
        video = _video_stream(container, vcodec, frames, fps)
        video.bit_rate = 800_000
        audio = None
        if wave is not None:
            if acodec == "libopus" and sample_rate not in OPUS_RATES:
                raise ValueError(f"{path.name}: Opus takes {OPUS_RATES} Hz, not {sample_rate}")
            audio = container.add_stream(acodec, rate=sample_rate)
            audio.layout = "mono"
            audio.codec_context.thread_count = 1
        _encode_video(container, video, frames)
        if audio is not None:
            samples = np.ascontiguousarray(np.clip(wave, -1, 1)[None], dtype=np.float32)
            fmt_name = audio.codec_context.codec.audio_formats[0].name  # the encoder's own sample format
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            frame.sample_rate = sample_rate
            resampler = av.AudioResampler(format=fmt_name, layout="mono", rate=sample_rate)
            for chunk in resampler.resample(frame):
                container.mux(audio.encode(chunk))
            container.mux(audio.encode(None))


def write_audio(path: Path, wave: np.ndarray, sample_rate: int) -> None:
    """An audio file in the format its suffix names: wav (16-bit PCM), flac, ogg (Vorbis) or mp3."""
    formats = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
    formats[".mp3"] = ("MP3", "MPEG_LAYER_III")
    fmt, subtype = formats[path.suffix.lower()]
    buffer = io.BytesIO()  # as write_wav: a full disk is then an OSError naming the file
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, subtype=subtype, format=fmt)
    atomic_write_bytes(path, buffer.getvalue())
