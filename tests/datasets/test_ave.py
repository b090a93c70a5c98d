"""AVE reader: annotation files, duplicates, bad lines, missing files, the official split, event crop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qkf_snn.datasets import CachedAVDataset, prepare, synthesize
from qkf_snn.datasets.ave import parse_line, scan
from qkf_snn.datasets.cache import CacheIndex
from qkf_snn.datasets.classes import AVE_CLASSES
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
    assert parse_line("Bark&x&good&5&3") == "invalid event span 5-3 (expected 0 <= start <= end)"
    assert parse_line("Bark&x&good&-1&3") == "invalid event span -1-3 (expected 0 <= start <= end)"
    empty = parse_line("Church bell&VWi2ENBuTbw&good&0&0")  # a line of the real release
    assert (empty.category, empty.video_id, empty.start, empty.end) == ("Church bell", "VWi2ENBuTbw", 0, 0)
    # Categories are split on '&' only: the comma belongs to the name.
    violin = parse_line("Violin, fiddle&-0-qt0eXX6M&good&3&10")
    assert (violin.category, violin.video_id, violin.start, violin.end) == (
        "Violin, fiddle",
        "-0-qt0eXX6M",
        3,
        10,
    )


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
        "Baby cry, infant cry",
        "Banjo",
    ]


def test_event_crop_only_for_ave(crema_raw: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--event-crop applies to ave only, not crema"):
        prepare("crema", crema_raw, tmp_path / "c", event_crop=True, progress=False)


# The 28 categories exactly as the real Annotations.txt, trainSet.txt, valSet.txt and testSet.txt write
# them (YapengTian/AVE-ECCV18, data/Annotations.txt: 4,143 lines, 28 distinct first fields). Written out
# here, not taken from the code under test.
REAL_AVE_CATEGORIES = (
    "Accordion",
    "Acoustic guitar",
    "Baby cry, infant cry",
    "Banjo",
    "Bark",
    "Bus",
    "Cat",
    "Chainsaw",
    "Church bell",
    "Clock",
    "Female speech, woman speaking",
    "Fixed-wing aircraft, airplane",
    "Flute",
    "Frying (food)",
    "Goat",
    "Helicopter",
    "Horse",
    "Male speech, man speaking",
    "Mandolin",
    "Motorcycle",
    "Race car, auto racing",
    "Rodents, rats, mice",
    "Shofar",
    "Toilet flush",
    "Train horn",
    "Truck",
    "Ukulele",
    "Violin, fiddle",
)


def _hand_written_root(ave_raw: Path, root: Path, lines: dict[str, list[str]]) -> Path:
    """An AVE root with the given split lines; every ID gets a copy of one synthetic mp4."""
    (root / "AVE").mkdir(parents=True)
    mp4 = next((ave_raw / "AVE").glob("*.mp4")).read_bytes()
    every = [ln for side in lines.values() for ln in side]
    for ln in every:
        (root / "AVE" / f"{ln.split('&')[1]}.mp4").write_bytes(mp4)
    header = "Category&VideoID&Quality&StartTime&EndTime"
    (root / "Annotations.txt").write_text("\n".join([header, *every]) + "\n")
    for name in ("trainSet.txt", "valSet.txt", "testSet.txt"):
        (root / name).write_text("".join(f"{ln}\n" for ln in lines.get(name, [])))
    return root


def test_all_28_real_category_names_are_read(ave_raw: Path, tmp_path: Path) -> None:
    assert len(REAL_AVE_CATEGORIES) == 28
    lines = [f"{name}&id{i:02d}xxxxxx&good&{i % 5}&10" for i, name in enumerate(REAL_AVE_CATEGORIES)]
    root = _hand_written_root(
        ave_raw, tmp_path / "ave", {"trainSet.txt": lines[:20], "testSet.txt": lines[20:]}
    )
    result = scan(root, {})
    assert result.skipped == [] and result.notes == []
    assert {r.clip_id: r.label for r in result.records} == {
        f"id{i:02d}xxxxxx": name for i, name in enumerate(REAL_AVE_CATEGORIES)
    }
    assert AVE_CLASSES == REAL_AVE_CATEGORIES  # canonical label order = the table above


def test_synthetic_ave_writes_the_real_names(tmp_path: Path) -> None:
    raw = synthesize("ave", tmp_path / "raw", clips=28, seed=1, classes=28, seconds=0.5, fps=2, imbalance=1.0)
    written = [ln.split("&")[0] for ln in _lines(raw / "Annotations.txt")[1:]]
    assert sorted(set(written)) == sorted(REAL_AVE_CATEGORIES)
    listed = [
        ln.split("&")[0] for f in ("trainSet.txt", "valSet.txt", "testSet.txt") for ln in _lines(raw / f)
    ]
    assert set(listed) == set(REAL_AVE_CATEGORIES)
    assert len(scan(raw, {}).records) == 28  # none skipped as an unknown category


@pytest.mark.parametrize("event_crop", [False, True])
def test_empty_event_span_keeps_the_whole_clip_and_says_so(
    ave_raw: Path, tmp_path: Path, small: dict, event_crop: bool
) -> None:
    lines = {
        "trainSet.txt": [
            "Church bell&VWi2ENBuTbw&good&0&0",
            "Bark&aaaaaaaaaaa&good&0&1",
            "Bark&bbbbbbbbbbb&good&1&2",
        ],
        "testSet.txt": ["Church bell&ccccccccccc&good&0&2", "Bark&ddddddddddd&good&1&2"],
    }
    root = _hand_written_root(ave_raw, tmp_path / "ave", lines)
    out = tmp_path / "cache"
    report = prepare("ave", root, out, clip_seconds=2.0, event_crop=event_crop, **small)
    assert (report.found, report.prepared, report.skipped) == (5, 5, 0)
    what = "kept whole, not cropped" if event_crop else "no effect without --event-crop"
    assert report.notes == [
        f"trainSet.txt:1: empty event span 0-0 for VWi2ENBuTbw ({what}; the usual patch is 0&10)"
    ]
    spans = {r.clip_id: (r.start, r.end) for r in scan(root, {"event_crop": event_crop}).records}
    assert spans["VWi2ENBuTbw"] == (0.0, None)
    assert spans["aaaaaaaaaaa"] == ((0.0, 1.0) if event_crop else (0.0, None))
    ds = CachedAVDataset(out, "train")
    assert "VWi2ENBuTbw" in ds.clip_ids
    # The whole clip was used: its decoded span is the full 2 s of the synthetic mp4, not 0 s.
    clips = {c["id"]: c for c in CacheIndex.load(out).clips}
    assert clips["VWi2ENBuTbw"]["seconds"] == pytest.approx(2.0, abs=0.05)
    assert clips["aaaaaaaaaaa"]["seconds"] == pytest.approx(1.0 if event_crop else 2.0, abs=0.05)


def test_empty_span_note_reaches_the_console(ave_raw: Path, tmp_path: Path) -> None:
    lines = {"trainSet.txt": ["Church bell&VWi2ENBuTbw&good&0&0", "Bark&aaaaaaaaaaa&good&0&1"]}
    root = _hand_written_root(ave_raw, tmp_path / "ave", lines)
    qkf = Path(sys.executable).with_name("qkf")
    args = [
        "--clip-seconds",
        "2",
        "--image-size",
        "16",
        "--n-mels",
        "16",
        "--audio-width",
        "8",
        "--no-progress",
    ]
    done = subprocess.run(
        [
            str(qkf),
            "data",
            "prepare",
            "ave",
            "--raw",
            str(root),
            "--out",
            str(tmp_path / "c"),
            "--event-crop",
            *args,
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "ave: found 2, prepared 2, skipped 0 (" in done.stdout
    assert (
        "note: trainSet.txt:1: empty event span 0-0 for VWi2ENBuTbw (kept whole, not cropped; "
        "the usual patch is 0&10)"
    ) in done.stdout
