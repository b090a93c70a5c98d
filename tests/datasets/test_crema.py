"""CREMA-D reader: both layouts, name parsing, pairing, and its three kinds of split."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from qkf_snn.datasets import DATASETS, CachedAVDataset, prepare, synthesize
from qkf_snn.datasets.crema import parse_name, scan
from qkf_snn.errors import UserError


def test_release_layout_is_read(crema_raw: Path) -> None:
    result = scan(crema_raw, {})
    assert len(result.records) == 36 and not result.skipped
    r = result.records[0]
    assert r.audio.parent.name == "AudioWAV" and r.video[0].suffix == ".flv" and r.video_kind == "container"
    assert r.group == r.clip_id.split("_")[0] and r.label == r.clip_id.split("_")[2]


def test_names_are_parsed() -> None:
    assert parse_name("1001_DFA_ANG_XX") == ("1001", "ANG")
    assert (
        parse_name("1001_DFA_XYZ_XX")
        == "unknown emotion code 'XYZ' (expected one of ANG, DIS, FEA, HAP, NEU, SAD)"
    )
    assert "is not <actor>_<sentence>_<emotion>_<level>" in parse_name("hello")


def test_unpaired_and_badly_named_files_are_skipped_with_reasons(crema_copy: Path) -> None:
    wavs = sorted((crema_copy / "AudioWAV").glob("*.wav"))
    (crema_copy / "VideoFlash" / f"{wavs[0].stem}.flv").unlink()  # a wav without its video
    wavs[1].unlink()  # a video without its wav
    stem = wavs[2].stem.split("_")
    bad = "_".join([stem[0], stem[1], "XYZ", stem[3]])
    wavs[2].rename(wavs[2].with_name(f"{bad}.wav"))
    (crema_copy / "VideoFlash" / f"{wavs[2].stem}.flv").rename(crema_copy / "VideoFlash" / f"{bad}.flv")
    result = scan(crema_copy, {})
    reasons = {s.clip_id: s.reason for s in result.skipped}
    assert reasons == {
        wavs[0].stem: f"no matching video VideoFlash/{wavs[0].stem}.flv",
        wavs[1].stem: f"no matching audio AudioWAV/{wavs[1].stem}.wav",
        bad: "unknown emotion code 'XYZ' (expected one of ANG, DIS, FEA, HAP, NEU, SAD)",
    }
    assert result.found == 36 and len(result.records) == 33


def test_wrong_root_is_one_line_naming_the_layout(tmp_path: Path, crema_copy: Path) -> None:
    with pytest.raises(UserError, match=r"^CREMA-D root .*: expected AudioWAV/ and VideoFlash/") as info:
        scan(tmp_path / "nothing-here", {})
    assert "\n" not in str(info.value)
    shutil.rmtree(crema_copy / "VideoFlash")
    with pytest.raises(UserError, match="found AudioWAV/ but not VideoFlash/"):
        scan(crema_copy, {})


def test_speaker_split_keeps_each_actor_on_one_side(crema_raw: Path) -> None:
    records = scan(crema_raw, {}).records
    name, assignment = DATASETS["crema"].assign(records, "speaker", 0)
    sides: dict[str, set[str]] = {}
    for r, s in zip(records, assignment.splits, strict=True):
        sides.setdefault(r.group, set()).add(s)
    assert all(len(s) == 1 for s in sides.values())
    assert {s for v in sides.values() for s in v} == {"train", "val", "test"}


def test_stratified_split_is_the_default_with_exact_sizes(crema_raw: Path) -> None:
    records = scan(crema_raw, {}).records
    name, assignment = DATASETS["crema"].assign(records, None, 0)
    assert name == "stratified"
    per_class = Counter(r.label for r in records)
    expected_test = sum(max(1, int(n * 0.1 + 0.5)) for n in per_class.values())
    assert Counter(assignment.splits)["test"] == expected_test == Counter(assignment.splits)["val"]


def _write_csv(path: Path, rows: list[tuple[str, str]], header: bool = True) -> None:
    lines = (["name,emotion"] if header else []) + [f"{c},{e}" for c, e in rows]
    path.write_text("\n".join(lines) + "\n")


def test_external_split_files(crema_raw: Path, tmp_path: Path) -> None:
    records = scan(crema_raw, {}).records
    rows = [(r.clip_id, r.label) for r in records]
    _write_csv(tmp_path / "train.csv", rows[:26] + [("1099_DFA_ANG_XX", "ANG")])
    _write_csv(tmp_path / "test.csv", rows[26:34], header=False)  # two clips listed nowhere
    name, a = DATASETS["crema"].assign(records, str(tmp_path), 0)
    assert name == f"file:{tmp_path}"
    assert [a.splits[i] for i in range(26, 34)] == ["test"] * 8
    assert a.splits[34] is None and a.reasons[34] == f"not listed in the split files in {tmp_path}"
    assert Counter(a.splits)["val"] >= 1 and Counter(a.splits)["train"] + Counter(a.splits)["val"] == 26
    assert any("1 clips listed" in n for n in a.notes) and any("no val.csv" in n for n in a.notes)
    _write_csv(tmp_path / "val.csv", rows[34:])
    _, a = DATASETS["crema"].assign(records, str(tmp_path / "train.csv"), 0)
    assert a.splits[34:] == ["val", "val"] and Counter(a.splits) == {"train": 26, "test": 8, "val": 2}


def test_missing_split_file_and_unknown_split_name(crema_raw: Path, tmp_path: Path) -> None:
    records = scan(crema_raw, {}).records
    _write_csv(tmp_path / "train.csv", [])
    with pytest.raises(UserError, match=r"--split .*: missing test.csv \(expected train.csv and test.csv\)"):
        DATASETS["crema"].assign(records, str(tmp_path), 0)
    with pytest.raises(UserError, match="unknown split for crema \\(choose stratified, speaker, folders"):
        DATASETS["crema"].assign(records, "bogus", 0)


def test_pre_extracted_frames_layout_prepares_with_its_folders(
    tmp_path: Path, small: dict, knobs: dict
) -> None:
    raw = synthesize("crema", tmp_path / "raw", clips=24, seed=4, layout="frames", **knobs["crema"])
    assert sorted(p.name for p in raw.iterdir()) == ["synth.json", "test", "train", "val"]
    clip = next(p for p in (raw / "train").iterdir() if p.is_dir())
    assert sorted(p.name for p in clip.iterdir()) == ["frame_0000.jpg", "frame_0001.jpg", "frame_0002.jpg"]
    assert (raw / "train" / f"{clip.name}.wav").is_file()
    report = prepare("crema", raw, tmp_path / "cache", clip_seconds=1.0, **small)
    assert report.split == "folders" and report.prepared == 24
    on_disk = {s: len(list((raw / s).glob("*.wav"))) for s in ("train", "val", "test")}
    assert report.splits == on_disk
    ds = CachedAVDataset(tmp_path / "cache", "val")
    assert set(ds.clip_ids) == {p.stem for p in (raw / "val").glob("*.wav")}

    # The same clip in two split folders is kept once; the repeat is reported.
    shutil.copytree(clip, raw / "test" / clip.name)
    shutil.copy(raw / "train" / f"{clip.name}.wav", raw / "test" / f"{clip.name}.wav")
    report = prepare("crema", raw, tmp_path / "cache2", clip_seconds=1.0, **small)
    assert (report.found, report.prepared) == (25, 24)
    assert [(s.clip_id, s.reason) for s in report.skipped_clips] == [
        (clip.name, f"duplicate clip name (also train/{clip.name}.wav)")
    ]
