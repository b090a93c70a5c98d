"""`qkf data synth|prepare|info` through typer's CliRunner: exit codes, output, one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qkf_snn.cli.data import app, parse_knobs
from qkf_snn.errors import UserError

runner = CliRunner()
TINY = [
    "--clip-seconds",
    "0.5",
    "--image-size",
    "16",
    "--n-mels",
    "16",
    "--audio-width",
    "8",
    "--no-progress",
]


def test_synth_prepare_info_round_trip(tmp_path: Path) -> None:
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    result = runner.invoke(
        app, ["synth", "crema", "--out", str(raw), "--clips", "12", "--seed", "1", "--set", "seconds=0.5"]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote 12 synthetic crema clips to {raw}" in result.output
    assert f"qkf data prepare crema --raw {raw} --out {raw}-cache --clip-seconds 0.5" in result.output

    (raw / "AudioWAV" / sorted((raw / "AudioWAV").iterdir())[0].name).write_bytes(b"")
    result = runner.invoke(app, ["prepare", "crema", "--raw", str(raw), "--out", str(cache), *TINY])
    assert result.exit_code == 0, result.output
    assert "crema: found 12, prepared 11, skipped 1 (" in result.output
    assert "skipped AudioWAV/" in result.output and "audio file is empty (0 bytes)" in result.output

    result = runner.invoke(app, ["info", str(cache)])
    assert result.exit_code == 0, result.output
    for name in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD", "train", "val", "test"):
        assert name in result.output
    assert "1 clips could not be decoded" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["prepare", "crema", "--raw", "{tmp}/none", "--out", "{tmp}/c"],
            "--raw {tmp}/none: no such directory",
        ),
        (
            ["prepare", "ave", "--raw", "{tmp}", "--out", "{tmp}/c"],
            "AVE root {tmp}: no AVE/ folder of mp4 clips",
        ),
        (["prepare", "mnist", "--raw", "{tmp}", "--out", "{tmp}/c"], "unknown dataset 'mnist'"),
        (["info", "{tmp}"], "cache {tmp}: no index.json"),
        (["synth", "crema", "--out", "{tmp}/s", "--set", "noise"], "--set 'noise': expected KEY=VALUE"),
        (["synth", "crema", "--out", "{tmp}/s", "--set", "vibes=3"], "unknown synth knob(s) vibes"),
    ],
)
def test_bad_input_is_a_user_error_of_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert isinstance(result.exception, UserError), result.output
    text = str(result.exception)
    assert text.startswith(message.format(tmp=tmp_path)) and "\n" not in text


def test_main_prints_the_error_without_traceback_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main = pytest.importorskip("qkf_snn.cli.main").main
    monkeypatch.setattr(
        sys, "argv", ["qkf", "data", "prepare", "crema", "--raw", str(tmp_path), "--out", str(tmp_path / "c")]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    expected = (
        "AudioWAV/ and VideoFlash/ (CREMA-D release), or train/ val/ test/ folders of <clip>/frame_XXXX.jpg"
    )
    assert err == f"error: CREMA-D root {tmp_path}: expected {expected}"


def test_nothing_usable_exits_non_zero(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    assert (
        runner.invoke(
            app, ["synth", "crema", "--out", str(raw), "--clips", "3", "--set", "seconds=0.5"]
        ).exit_code
        == 0
    )
    for wav in (raw / "AudioWAV").iterdir():
        wav.write_bytes(b"RIFF")
    result = runner.invoke(app, ["prepare", "crema", "--raw", str(raw), "--out", str(tmp_path / "c"), *TINY])
    assert result.exit_code != 0 and isinstance(result.exception, UserError)
    assert "no usable clip (3 found, all skipped" in str(result.exception)


def test_parse_knobs_types_values() -> None:
    assert parse_knobs(["audio_noise=0.5", "audio_pairs=true", "classes=[Bark, Cat]", "layout=frames"]) == {
        "audio_noise": 0.5,
        "audio_pairs": True,
        "classes": ["Bark", "Cat"],
        "layout": "frames",
    }
