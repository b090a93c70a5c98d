"""AVE (Audio-Visual Event): ``AVE/<id>.mp4`` (audio track inside) and the official annotation files.

Lines are ``Category&VideoID&Quality&StartTime&EndTime``; ``Annotations.txt`` has a header line and
lists every clip, ``trainSet.txt`` / ``valSet.txt`` / ``testSet.txt`` give the official split. An ID
listed twice is kept once: files are read test, val, train, so a repeat never moves a clip out of an
evaluation set. With ``event_crop`` the clip is cut to [StartTime, EndTime] (the "SE" setting).

Categories are split on '&' only: seven real names contain a comma ("Violin, fiddle"). The release has
an annotation with an empty span (``Church bell&VWi2ENBuTbw&good&0&0``); its label is still right, so
the clip is kept whole (what users' usual patch to ``0&10`` does) and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qkf_snn.datasets.classes import AVE_CLASSES
from qkf_snn.datasets.features import MODALITIES
from qkf_snn.datasets.records import ClipRecord, ScanResult, SkippedClip
from qkf_snn.datasets.splits import Assignment
from qkf_snn.errors import UserError

ANNOTATIONS = "Annotations.txt"
SPLIT_FILES = {"test": "testSet.txt", "val": "valSet.txt", "train": "trainSet.txt"}  # dedup order
HEADER = "Category&VideoID&Quality&StartTime&EndTime"


@dataclass(frozen=True)
class Entry:
    """One annotation line."""

    category: str
    video_id: str
    start: float
    end: float


def parse_line(line: str) -> Entry | str:
    """An annotation line, or the reason it is malformed."""
    parts = line.split("&")
    if len(parts) != 5:
        return f"expected 5 '&'-separated fields ({HEADER}), got {len(parts)}"
    category, video_id, _quality, start, end = (p.strip() for p in parts)
    try:
        s, e = float(start), float(end)
    except ValueError:
        return f"start/end '{start}'/'{end}' are not numbers"
    if s < 0 or e < s:
        return f"invalid event span {start}-{end} (expected 0 <= start <= end)"
    return Entry(category, video_id, s, e)


def _lines(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [
        (n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1) if ln.strip() and ln.strip() != HEADER
    ]


def scan(raw: Path, options: dict) -> ScanResult:
    """Every entry of the three split files; the files and ``AVE/`` must exist."""
    expected = [ANNOTATIONS, *reversed(SPLIT_FILES.values())]  # as users know them: train, val, test
    if not (raw / "AVE").is_dir():
        raise UserError(
            f"AVE root {raw}: no AVE/ folder of mp4 clips (expected AVE/ and {', '.join(expected)})"
        )
    missing = [name for name in expected if not (raw / name).is_file()]
    if missing:
        raise UserError(f"AVE root {raw}: missing {', '.join(missing)} (expected {', '.join(expected)})")
    event_crop = bool(options.get("event_crop", False))
    wanted = tuple(options.get("modalities", MODALITIES))
    annotated: dict[str, str] = {}
    for _n, line in _lines(raw / ANNOTATIONS):
        entry = parse_line(line)
        if isinstance(entry, Entry):
            annotated.setdefault(entry.video_id, entry.category)
    result = ScanResult()
    first_seen: dict[str, str] = {}
    for split, name in SPLIT_FILES.items():
        for lineno, line in _lines(raw / name):
            where = f"{name}:{lineno}"
            entry = parse_line(line)
            if isinstance(entry, str):
                result.skipped.append(SkippedClip(line.split("&")[1] if "&" in line else where, where, entry))
                continue
            clip, video = entry.video_id, raw / "AVE" / f"{entry.video_id}.mp4"
            reason = None
            if clip in first_seen:
                reason = f"duplicate ID, kept at {first_seen[clip]} (dropped)"
            elif entry.category not in AVE_CLASSES:
                reason = f"unknown category '{entry.category}'"
            elif annotated.get(clip) != entry.category:
                reason = f"not in {ANNOTATIONS} with category '{entry.category}'"
            elif not video.is_file():
                reason = f"missing video AVE/{clip}.mp4"
            first_seen.setdefault(clip, where)
            if reason:
                result.skipped.append(
                    SkippedClip(clip, where if "duplicate" in reason else f"AVE/{clip}.mp4", reason)
                )
                continue
            start, end = (entry.start, entry.end) if event_crop else (0.0, None)
            if entry.start == entry.end:
                start, end = 0.0, None
                what = "kept whole, not cropped" if event_crop else "no effect without --event-crop"
                result.notes.append(
                    f"{where}: empty event span {entry.start:g}-{entry.end:g} for {clip} ({what}; "
                    "the usual patch is 0&10)"
                )
            # The mp4 holds both tracks: a modality not asked for is not read.
            audio, frames = (video if "audio" in wanted else None), ((video,) if "video" in wanted else ())
            rec = ClipRecord(clip, entry.category, audio, frames, "container", clip, start, end, split)
            result.records.append(rec)
    result.records.sort(key=lambda r: r.clip_id)
    return result


def split_official(records: list[ClipRecord], seed: int) -> Assignment:
    return Assignment([r.split for r in records])
