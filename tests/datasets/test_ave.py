"""AVE reader: annotation files, duplicates, bad lines, missing files, the official split, event crop."""

from __future__ import annotations

from pathlib import Path

import pytest

from qkf_snn.datasets import CachedAVDataset, prepare
from qkf_snn.datasets.ave import parse_line, scan
from qkf_snn.errors import UserError


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln]


def test_official_lists_give_the_split_and_duplicates_are_dropped(ave_raw: Path) -> None:
    result = scan(ave_raw, {})
    listed = {f: _lines(ave_raw / f) for f in ("trainSet.txt", "valSet.txt", "testSet.txt")}
    assert len(listed["trainSet.txt"]) == len({ln.split("&")[1] for ln in listed["trainSet.txt"]}) + 2
    assert result.found == sum(map(len, listed.values()))
    assert [s.reason for s in result.skipped] == [
        "duplicate ID, kept at trainSet.txt:1 (dropped)",
        "duplicate ID, kept at trainSet.txt:2 (dropped)",
    ]
    for name, split in (("trainSet.txt", "train"), ("valSet.txt", "val"), ("testSet.txt", "test")):
        ids = {ln.split("&")[1] for ln in listed[name]}
        assert {r.clip_id for r in result.records if r.split == split} == ids
    assert all(r.start == 0.0 and r.end is None for r in result.records)


def test_event_crop_sets_the_span(ave_raw: Path) -> None:
    spans = {ln.split("&")[1]: ln.split("&")[3:] for ln in _lines(ave_raw / "Annotations.txt")[1:]}
    for r in scan(ave_raw, {"event_crop": True}).records:
        assert (r.start, r.end) == tuple(float(x) for x in spans[r.clip_id])


def test_bad_lines_missing_videos_and_unknown_categories_are_skipped(ave_copy: Path) -> None:
    test = _lines(ave_copy / "testSet.txt")
    (ave_copy / "AVE" / f"{test[0].split('&')[1]}.mp4").unlink()
    cat, vid, *rest = test[1].split("&")
    test[1] = "&".join(["Kazoo", vid, *rest])
    test.append("Bark&only-four&good&0")
    (ave_copy / "testSet.txt").write_text("\n".join(test) + "\n")
    reasons = {s.clip_id: (s.path, s.reason) for s in scan(ave_copy, {}).skipped}
    first = test[0].split("&")[1]
    assert reasons[first] == (f"AVE/{first}.mp4", f"missing video AVE/{first}.mp4")
    assert reasons[vid] == (f"AVE/{vid}.mp4", "unknown category 'Kazoo'")
    assert (
        reasons["only-four"][1]
        == "expected 5 '&'-separated fields (Category&VideoID&Quality&StartTime&EndTime), got 4"
    )


def test_parse_line() -> None:
    assert parse_line("Church bell&RUhOCu3LNXM&good&0&10").video_id == "RUhOCu3LNXM"
    assert parse_line("Bark&x&good&a&3") == "start/end 'a'/'3' are not numbers"
    assert parse_line("Bark&x&good&5&3") == "empty event span 5-3"


@pytest.mark.parametrize("missing", ["testSet.txt", "Annotations.txt"])
def test_missing_annotation_file_is_one_clear_line(ave_copy: Path, missing: str) -> None:
    (ave_copy / missing).unlink()
    with pytest.raises(UserError) as info:
        scan(ave_copy, {})
    assert str(info.value) == (
        f"AVE root {ave_copy}: missing {missing} "
        "(expected Annotations.txt, trainSet.txt, valSet.txt, testSet.txt)"
    )


def test_wrong_root(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"AVE root .*: no AVE/ folder of mp4 clips"):
        scan(tmp_path, {})


def test_prepared_ave_cache_follows_the_official_lists(ave_raw: Path, ave_cache: Path) -> None:
    for split, name in (("val", "valSet.txt"), ("test", "testSet.txt")):
        ds = CachedAVDataset(ave_cache, split)
        assert sorted(ds.clip_ids) == sorted({ln.split("&")[1] for ln in _lines(ave_raw / name)})
    assert CachedAVDataset(ave_cache, "train").class_names == [
        "Accordion",
        "Acoustic guitar",
        "Baby cry/infant cry",
        "Banjo",
    ]


def test_event_crop_only_for_ave(crema_raw: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--event-crop applies to ave only, not crema"):
        prepare("crema", crema_raw, tmp_path / "c", event_crop=True, progress=False)
