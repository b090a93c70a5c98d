"""Bounds that keep a prepare meaningful, and the run log's tolerance of a line cut short."""

from __future__ import annotations

import warnings

import pytest
import torchaudio.transforms as AT

from qkf_snn.datasets.features import FeatureParams, max_n_mels, mel_bands_fit
from qkf_snn.datasets.synth.knobs import resolve_knobs
from qkf_snn.errors import UserError
from qkf_snn.training.logging import RunLogger


@pytest.mark.parametrize(("sample_rate", "n_fft", "expected"), [(16000, 512, 114), (22050, 512, 93)])
def test_max_n_mels_is_the_last_count_without_an_empty_filter(sample_rate, n_fft, expected) -> None:
    """At the bound every filter of the transform `log_mel_steps` uses has a bin; one more and some
    filter is all zeros (the values are torchaudio's own, found by brute force once)."""
    assert max_n_mels(sample_rate, n_fft) == expected
    for n_mels, empty in ((expected, False), (expected + 1, True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fb = AT.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels).mel_scale.fb
        assert bool((fb.amax(dim=0) == 0).any()) is empty
        assert mel_bands_fit(sample_rate, n_fft, n_mels) is not empty
    assert FeatureParams().n_fft == 512  # the default prepare settings are bounded by 114 bands


def test_synth_knobs_are_checked_against_the_type_of_their_default() -> None:
    assert resolve_knobs("crema", {"audio_noise": 1}).audio_noise == 1.0  # an int is a fine float
    for knob, value in (("audio_noise", "abc"), ("actors", 2.5), ("audio_pairs", 1), ("layout", "foo"),
                        ("classes", 2.0), ("video_noise", -0.1)):  # fmt: skip
        with pytest.raises(UserError, match=knob):
            resolve_knobs("crema", {knob: value})


def test_a_log_line_cut_short_is_not_a_record(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 0}\n{"epoch": 1}\n{"epo')
    assert RunLogger.read(path) == [{"epoch": 0}, {"epoch": 1}]
