"""Class-dependent sounds: a harmonic tone whose pitch, glide direction and tremolo rate encode the
class signature, buried in white noise (``audio_noise``) or absent (``audio_missing``)."""

from __future__ import annotations

import numpy as np

from qkf_snn.datasets.synth.knobs import SynthKnobs

BASE_HZ = 200.0
AM_RATES = (3.0, 6.0, 11.0)  # tremolo (Hz), by signature mod 3
PAIR_CUE_HZ = 3500.0
PEAK = 0.3  # headroom: tone + noise stay well inside [-1, 1]


def semitone_step(n_signatures: int) -> float:
    """Pitch spacing that keeps the third harmonic of the highest class below 7 kHz."""
    return min(4.0, 42.0 / max(n_signatures - 1, 1))


def class_sound(
    signature: int,
    n_signatures: int,
    n: int,
    sample_rate: int,
    rng: np.random.Generator,
    shift: float = 0.0,
) -> np.ndarray:
    """Unit-amplitude tone of ``n`` samples for ``signature``; ``shift`` (semitones) is a speaker offset."""
    t = np.arange(n) / sample_rate
    semis = signature * semitone_step(n_signatures) + shift + rng.uniform(-0.3, 0.3)
    glide = (1.0 if signature % 2 == 0 else -1.0) * t / max(t[-1], 1e-9)  # one semitone up or down
    freq = BASE_HZ * 2.0 ** ((semis + glide) / 12.0)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate + rng.uniform(0, 2 * np.pi)
    tone = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    tremolo = 0.6 + 0.4 * np.sin(2 * np.pi * AM_RATES[signature % 3] * t + rng.uniform(0, 2 * np.pi))
    return (tone * tremolo / 1.75).astype(np.float32)


def window(n: int, sample_rate: int, start: float, end: float) -> np.ndarray:
    """1 inside [start, end] seconds with 20 ms ramps, 0 outside (an AVE event)."""
    t = np.arange(n) / sample_rate
    ramp = 0.02
    return np.clip(np.minimum((t - start) / ramp, (end - t) / ramp), 0.0, 1.0).astype(np.float32)


def clip_audio(
    label: int,
    n_classes: int,
    knobs: SynthKnobs,
    rng: np.random.Generator,
    *,
    sample_rate: int | None = None,
    shift: float = 0.0,
    event: tuple[float, float] | None = None,
) -> np.ndarray:
    """Mono float32 waveform of one clip of class ``label``."""
    sr = sample_rate or knobs.sample_rate
    n = round(knobs.seconds * sr)
    signature, n_sig = (label // 2, (n_classes + 1) // 2) if knobs.audio_pairs else (label, n_classes)
    sound = np.zeros(n, np.float32)
    if rng.random() >= knobs.audio_missing:
        sound = class_sound(signature, n_sig, n, sr, rng, shift)
        if knobs.audio_pairs and label % 2 == 1 and knobs.audio_pair_cue > 0:
            t = np.arange(n) / sr
            sound = sound + knobs.audio_pair_cue * np.sin(2 * np.pi * PAIR_CUE_HZ * t).astype(np.float32)
        if event is not None:
            sound = sound * window(n, sr, *event)
    noise = rng.standard_normal(n).astype(np.float32) * knobs.audio_noise
    return (PEAK * (sound + noise)).astype(np.float32)
