"""prepare: counts that add up, a reason per bad file, resume after a kill, idempotence, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from qkf_snn.datasets import DATASETS, prepare
from qkf_snn.datasets import workers as workers_module
from qkf_snn.datasets.cache import CacheIndex, open_array
from qkf_snn.datasets.synth.writers import write_wav
from qkf_snn.errors import UserError
from qkf_snn.io import atomic_write


def _cut(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _arrays(cache: Path) -> dict[str, np.ndarray]:
    index = CacheIndex.load(cache)
    return {m: np.array(open_array(cache, index, m)) for m in index.modalities}


def test_every_bad_crema_file_is_skipped_with_its_reason(
    crema_copy: Path, tmp_path: Path, small: dict
) -> None:
    wavs = sorted((crema_copy / "AudioWAV").glob("*.wav"))
    flv = lambda w: crema_copy / "VideoFlash" / f"{w.stem}.flv"  # noqa: E731
    _cut(wavs[0], 0.5)  # truncated wav
    write_wav(wavs[1], np.zeros(0, np.float32), 16000)  # zero-length audio
    flv(wavs[2]).write_bytes(b"FLV\x01" + os.urandom(64))  # corrupt flv
    _cut(flv(wavs[3]), 0.3)  # truncated flv
    flv(wavs[4]).unlink()  # a wav without its video
    bad = wavs[5].with_name(wavs[5].name.replace(wavs[5].stem.split("_")[2], "XYZ"))
    wavs[5].rename(bad)  # unknown emotion code (its flv now has no wav either)
    report = prepare("crema", crema_copy, tmp_path / "cache", clip_seconds=1.0, **small)

    reasons = {s.clip_id: (s.path, s.reason) for s in report.skipped_clips}
    assert reasons[wavs[0].stem][0] == f"AudioWAV/{wavs[0].name}"
    assert reasons[wavs[0].stem][1].startswith("wav truncated: header declares")
    assert reasons[wavs[1].stem] == (f"AudioWAV/{wavs[1].name}", "audio is empty (0 samples)")
    assert reasons[wavs[2].stem][0] == f"VideoFlash/{wavs[2].stem}.flv"
    assert reasons[wavs[2].stem][1].startswith(("cannot decode video", "no video"))
    assert reasons[wavs[3].stem][1].startswith(("video truncated", "cannot decode video"))
    assert reasons[wavs[4].stem] == (
        f"AudioWAV/{wavs[4].name}",
        f"no matching video VideoFlash/{wavs[4].stem}.flv",
    )
    assert reasons[bad.stem][1].startswith("unknown emotion code 'XYZ'")
    assert reasons[wavs[5].stem][1] == f"no matching audio AudioWAV/{wavs[5].stem}.wav"
    # 36 clips + the renamed wav (a new name) = 37 found; 7 skipped.
    assert (report.found, report.prepared, report.skipped) == (37, 30, 7)
    assert report.found == report.prepared + report.skipped == len(report.skipped_clips) + report.prepared
    saved = json.loads((tmp_path / "cache" / "report.json").read_text())
    assert (saved["found"], saved["prepared"], saved["skipped"]) == (37, 30, 7)
    assert len(CacheIndex.load(tmp_path / "cache").clips) == 30 == sum(report.splits.values())


def test_bad_mp4_and_jpg_are_skipped(ave_copy: Path, us8k_copy: Path, tmp_path: Path, small: dict) -> None:
    mp4s = sorted((ave_copy / "AVE").glob("*.mp4"))
    _cut(mp4s[0], 0.5)
    mp4s[1].write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(100))
    report = prepare("ave", ave_copy, tmp_path / "ave", clip_seconds=2.0, **small)
    reasons = {s.clip_id: s.reason for s in report.skipped_clips}
    assert reasons[mp4s[0].stem].startswith("cannot decode audio track")
    assert reasons[mp4s[1].stem].startswith("cannot decode audio track")
    assert report.found == report.prepared + report.skipped and report.prepared == 18

    jpgs = sorted((us8k_copy / "Dataset_v3_vision").rglob("*.jpg"))
    _cut(jpgs[0], 0.4)
    jpgs[1].write_bytes(b"garbage")
    report = prepare("urbansound8k-av", us8k_copy, tmp_path / "us", clip_seconds=0.5, **small)
    reasons = {s.clip_id: (s.path, s.reason) for s in report.skipped_clips}
    assert reasons[jpgs[0].stem][1].startswith(f"cannot read image {jpgs[0].name}")
    assert reasons[jpgs[1].stem][1] == f"cannot read image {jpgs[1].name}: not an image Pillow can identify"
    assert reasons[jpgs[1].stem][0] == str(jpgs[1].relative_to(us8k_copy))
    assert (report.found, report.prepared, report.skipped) == (30, 28, 2)


def test_nothing_usable_is_an_error_and_still_reports(crema_copy: Path, tmp_path: Path, small: dict) -> None:
    for wav in (crema_copy / "AudioWAV").glob("*.wav"):
        wav.write_bytes(b"")
    with pytest.raises(
        UserError, match=r"no usable clip \(36 found, all skipped; reasons in .*report.json\)"
    ):
        prepare("crema", crema_copy, tmp_path / "cache", **small)
    saved = json.loads((tmp_path / "cache" / "report.json").read_text())
    assert saved["found"] == saved["skipped"] == 36 and saved["prepared"] == 0
    assert not (tmp_path / "cache" / "index.json").exists()


def test_killed_run_resumes_without_redoing_clips(
    crema_copy: Path, crema_cache: Path, tmp_path: Path, small: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = workers_module.decode_clip, []

    def dying(record, params):  # a kill after 10 finished clips
        if len(calls) == 10:
            raise KeyboardInterrupt
        calls.append(record.clip_id)
        return real(record, params)

    monkeypatch.setattr(workers_module, "decode_clip", dying)
    out = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        prepare("crema", crema_copy, out, clip_seconds=1.0, **small)
    assert len(list((out / "parts").glob("*.npz"))) == 10 and not (out / "index.json").exists()

    done_before, calls[:] = list(calls), []
    monkeypatch.setattr(workers_module, "decode_clip", lambda r, p: calls.append(r.clip_id) or real(r, p))
    report = prepare("crema", crema_copy, out, clip_seconds=1.0, **small)
    assert (report.decoded, report.reused, report.prepared) == (26, 10, 36)
    assert not set(calls) & set(done_before)
    # Same result as one uninterrupted run (the session cache was made from the same files).
    assert CacheIndex.load(out).clips == CacheIndex.load(crema_cache).clips
    for m, array in _arrays(out).items():
        assert np.array_equal(array, _arrays(crema_cache)[m])
    assert not (out / "parts").exists()


def test_rerun_is_idempotent_and_redoes_only_changed_clips(
    crema_copy: Path, tmp_path: Path, small: dict
) -> None:
    out = tmp_path / "cache"
    first = prepare("crema", crema_copy, out, clip_seconds=1.0, **small)
    index = CacheIndex.load(out)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    again = prepare("crema", crema_copy, out, clip_seconds=1.0, **small)
    assert (again.decoded, again.reused, again.prepared) == (0, 36, first.prepared)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")} == stamps  # nothing rewritten
    assert CacheIndex.load(out) == index

    wav = sorted((crema_copy / "AudioWAV").glob("*.wav"))[0]
    write_wav(wav, 0.1 * np.ones(16000, np.float32), 16000)
    changed = prepare("crema", crema_copy, out, clip_seconds=1.0, **small)
    assert (changed.decoded, changed.reused) == (1, 35)
    assert sorted(p.name for p in out.glob("*.npy")) != sorted(stamps)  # a new generation replaced the old

    other = prepare("crema", crema_copy, out, clip_seconds=1.0, **{**small, "image_size": 24})
    assert other.decoded == 36 and len(list(out.glob("video-*.npy"))) == 1
    assert _arrays(out)["video"].shape == (36, 4, 3, 24, 24)


def test_parallel_workers_give_the_same_cache(
    crema_raw: Path, crema_cache: Path, tmp_path: Path, small: dict
) -> None:
    report = prepare("crema", crema_raw, tmp_path / "cache", clip_seconds=1.0, workers=2, **small)
    assert report.workers == 2 and report.decoded == 36
    for m, array in _arrays(tmp_path / "cache").items():
        assert np.array_equal(array, _arrays(crema_cache)[m])


def test_interrupted_finalize_keeps_the_previous_cache_usable(
    crema_copy: Path, tmp_path: Path, small: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cache"
    prepare("crema", crema_copy, out, clip_seconds=1.0, **small)
    before = _arrays(out)
    write_wav(sorted((crema_copy / "AudioWAV").glob("*.wav"))[0], 0.1 * np.ones(16000, np.float32), 16000)
    from qkf_snn.datasets import finalize

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed while the new arrays are being written

    monkeypatch.setattr(finalize, "read_part", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare("crema", crema_copy, out, clip_seconds=1.0, **small)
    assert not list(out.glob(".*.tmp")), "temporary files are removed"
    for m, array in _arrays(out).items():  # the old index still names complete arrays
        assert np.array_equal(array, before[m])
    monkeypatch.undo()
    report = prepare("crema", crema_copy, out, clip_seconds=1.0, **small)
    assert (report.decoded, report.reused) == (0, 36)  # the changed clip was decoded before the crash


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def half_then_fail(fh) -> None:
        fh.write(b"new but incomplete")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    atomic_write(target, lambda fh: fh.write(b"new"))
    assert target.read_bytes() == b"new"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(dataset="kinetics"), f"unknown dataset 'kinetics' (choose {', '.join(DATASETS)})"),
        (dict(workers=0), "--workers 0: must be at least 1"),
        (dict(time_steps=0), "--time-steps 0: must be a positive integer"),
        (dict(clip_seconds=-1.0), "--clip-seconds -1.0: must be positive"),
        (dict(modalities=("smell",)), "--modalities smell: choose audio, video or both"),
        (dict(split="bogus"), "--split 'bogus': unknown split for crema"),
    ],
)
def test_bad_arguments_are_one_line(crema_raw: Path, tmp_path: Path, kwargs: dict, message: str) -> None:
    args = dict(dataset="crema", raw=crema_raw, out=tmp_path / "c", progress=False)
    args.update(kwargs)
    with pytest.raises(UserError) as info:
        prepare(args.pop("dataset"), args.pop("raw"), args.pop("out"), **args)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_wrong_raw_and_foreign_out(crema_raw: Path, tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=r"^--raw .*nope: no such directory \(expected AudioWAV/ and VideoFlash/"
    ):
        prepare("crema", tmp_path / "nope", tmp_path / "c", progress=False)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="--out .*home: not empty and not a qkf cache"):
        prepare("crema", crema_raw, tmp_path / "home", progress=False)
    assert (tmp_path / "home" / "thesis.tex").read_text() == "precious"


def test_audio_only_cache(crema_raw: Path, tmp_path: Path, small: dict) -> None:
    prepare("crema", crema_raw, tmp_path / "a", clip_seconds=1.0, modalities=("audio",), **small)
    index = CacheIndex.load(tmp_path / "a")
    assert index.modalities == ["audio"] and list(index.arrays) == ["audio"]
