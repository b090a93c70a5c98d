"""UrbanSound8K-AV reader: pairing, recording-aware split, and the published class-directory split."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from qkf_snn.datasets import DATASETS
from qkf_snn.datasets.urbansound import scan
from qkf_snn.errors import UserError


def test_pairs_and_recording_groups(us8k_raw: Path) -> None:
    result = scan(us8k_raw, {})
    assert len(result.records) == 30 and not result.skipped
    for r in result.records:
        assert r.audio.name.startswith(r.group + "-") and r.video[0].suffix == ".jpg"
        assert r.audio.parent.name == r.video[0].parent.name == r.label
    assert len({r.group for r in result.records}) < 30  # several slices per recording


def test_recording_split_keeps_each_recording_on_one_side(us8k_raw: Path) -> None:
    records = scan(us8k_raw, {}).records
    name, a = DATASETS["urbansound8k-av"].assign(records, None, 0)
    assert name == "recording"
    side_of: dict[str, str] = {}
    for r, s in zip(records, a.splits, strict=True):
        assert side_of.setdefault(r.group, s) == s, f"recording {r.group} on two sides"
    assert set(a.splits) == {"train", "val", "test"}
    assert {r.label for r, s in zip(records, a.splits, strict=True) if s == "train"} == {
        r.label for r in records
    }


def test_class_dir_split_is_named_and_exact(us8k_raw: Path) -> None:
    records = scan(us8k_raw, {}).records
    name, a = DATASETS["urbansound8k-av"].assign(records, "class-dir-70", 0)
    assert name == "class-dir-70" and "published" in a.notes[0]
    by_class: dict[str, list[tuple[str, str]]] = {}
    for r, s in zip(records, a.splits, strict=True):
        by_class.setdefault(r.label, []).append((r.clip_id, s))
    for items in by_class.values():
        items.sort()
        n_pool = int(len(items) * 0.7 + 0.5)
        assert all(s == "test" for _, s in items[n_pool:])
        assert all(s in ("train", "val") for _, s in items[:n_pool])


def test_unpaired_and_mislabelled_files(us8k_copy: Path) -> None:
    wavs = sorted((us8k_copy / "Dataset_v3_sound").rglob("*.wav"))
    image_of = lambda w: us8k_copy / "Dataset_v3_vision" / w.parent.name / f"{w.stem}.jpg"  # noqa: E731
    image_of(wavs[0]).unlink()
    wavs[1].unlink()
    other = next(d for d in (us8k_copy / "Dataset_v3_sound").iterdir() if d.name != wavs[2].parent.name)
    (other).joinpath(wavs[2].name).write_bytes(wavs[2].read_bytes())
    (us8k_copy / "Dataset_v3_vision" / other.name / f"{wavs[2].stem}.jpg").write_bytes(
        image_of(wavs[2]).read_bytes()
    )
    result = scan(us8k_copy, {})
    reasons = [(s.clip_id, s.reason) for s in result.skipped]
    label0, label1 = wavs[0].parent.name, wavs[1].parent.name
    assert (wavs[0].stem, f"no matching image Dataset_v3_vision/{label0}/{wavs[0].stem}.jpg") in reasons
    assert (wavs[1].stem, f"no matching audio Dataset_v3_sound/{label1}/{wavs[1].stem}.wav") in reasons
    class_id = wavs[2].stem.split("-")[1]
    assert (
        wavs[2].stem,
        f"classID {class_id} in the name does not match the folder '{other.name}'",
    ) in reasons
    assert result.found == 31 and Counter(r.clip_id for r in result.records).most_common(1)[0][1] == 1


def test_missing_folder_is_one_clear_line(us8k_copy: Path) -> None:
    shutil.rmtree(us8k_copy / "Dataset_v3_vision")
    with pytest.raises(UserError) as info:
        scan(us8k_copy, {})
    assert str(info.value) == (
        f"UrbanSound8K-AV root {us8k_copy}: missing Dataset_v3_vision/ "
        "(expected Dataset_v3_sound/<class>/*.wav and Dataset_v3_vision/<class>/*.jpg)"
    )
