"""What the models consume: a log-mel cut into T windows and T frames over the same span.

Every clip is brought to a fixed span of ``clip_seconds`` (tiled if shorter, as is usual for CREMA-D,
cut if longer). Step t covers ``[t, t + 1) * clip_seconds / T`` of that span: its audio is the t-th
window of ``audio_width`` log-mel columns and its frame is the one shown at the window's centre (the
same tiling applies, so a repeated stretch of audio gets the matching repeated frame).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

MODALITIES: tuple[str, ...] = ("audio", "video")
TOP_DB = 80.0


@dataclass(frozen=True)
class FeatureParams:
    """Settings that decide the cached arrays; a change of any of them means decoding again."""

    time_steps: int = 4  # T: SNN time steps, windows per clip
    sample_rate: int = 16000  # audio is resampled to this
    n_mels: int = 64  # F: mel bands
    audio_width: int = 64  # W: log-mel columns per time step
    image_size: int = 64  # frames are centre-cropped to a square of this side
    clip_seconds: float = 3.0  # fixed span every clip is tiled or cut to
    modalities: tuple[str, ...] = MODALITIES

    @property
    def hop_length(self) -> int:
        return max(1, round(self.clip_seconds * self.sample_rate / (self.time_steps * self.audio_width)))

    @property
    def n_fft(self) -> int:
        # At least 32 ms of signal, and never a hop longer than the window (no unseen samples).
        return max(512, 2 ** math.ceil(math.log2(self.hop_length)))

    @property
    def span_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        d.update(hop_length=self.hop_length, n_fft=self.n_fft)
        return d

    def key(self) -> str:
        """Short stable hash of the settings (part of every clip fingerprint)."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Tile a short waveform or cut a long one to exactly ``n`` samples."""
    if wave.size >= n:
        return wave[:n]
    return np.tile(wave, math.ceil(n / wave.size))[:n]


def step_times(content_seconds: float, params: FeatureParams) -> np.ndarray:
    """Where (seconds from the span start, in the source) the centre of each step falls."""
    centres = (np.arange(params.time_steps) + 0.5) * params.clip_seconds / params.time_steps
    if content_seconds < params.clip_seconds:
        return centres % content_seconds  # the content was tiled: wrap around like the audio
    return centres


def mel_bands_fit(sample_rate: int, n_fft: int, n_mels: int) -> bool:
    """Whether every one of ``n_mels`` triangular mel filters covers at least one of the
    ``n_fft // 2 + 1`` FFT bins (torchaudio's own filterbank, the one ``log_mel_steps`` uses).

    Filters narrow as bands are added, and the lowest ones soon fall between two bins: such a band
    is all zeros in every clip.
    """
    import warnings

    import torchaudio.functional as AF

    n_freqs = n_fft // 2 + 1
    if n_mels > n_freqs:
        return False
    with warnings.catch_warnings():  # torchaudio warns about the empty filters we look for
        warnings.simplefilter("ignore")
        fb = AF.melscale_fbanks(n_freqs, 0.0, float(sample_rate // 2), n_mels, sample_rate)
    return bool((fb.amax(dim=0) > 0).all())


@functools.lru_cache(maxsize=16)
def max_n_mels(sample_rate: int, n_fft: int) -> int:
    """The most mel bands that all fit (see :func:`mel_bands_fit`); the bands that fit form a prefix
    1..max, so a binary search finds it."""
    lo, hi = 1, n_fft // 2 + 1
    if mel_bands_fit(sample_rate, n_fft, hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if mel_bands_fit(sample_rate, n_fft, mid) else (lo, mid)
    return lo


@functools.lru_cache(maxsize=4)
def _mel_transform(sample_rate: int, n_fft: int, hop: int, n_mels: int) -> torch.nn.Module:
    import torch  # here, not at the top: `qkf --help` imports this module (via the dataset registry)
    import torchaudio.transforms as AT

    return torch.nn.Sequential(
        AT.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, power=2.0),
        AT.AmplitudeToDB(stype="power", top_db=TOP_DB),
    )


def log_mel_steps(wave: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Log-mel (dB) of a span-length waveform cut into steps: float32 [T, 1, F, W]."""
    import torch

    transform = _mel_transform(params.sample_rate, params.n_fft, params.hop_length, params.n_mels)
    with torch.no_grad():
        mel = transform(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))).numpy()
    T, W = params.time_steps, params.audio_width
    if mel.shape[1] < T * W:  # rounding of the hop can leave a column short: repeat the edge
        mel = np.pad(mel, ((0, 0), (0, T * W - mel.shape[1])), mode="edge")
    mel = mel[:, : T * W].reshape(params.n_mels, T, W).transpose(1, 0, 2)
    return np.ascontiguousarray(mel[:, None], dtype=np.float32)
