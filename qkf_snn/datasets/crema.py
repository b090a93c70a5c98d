"""CREMA-D: the release layout (AudioWAV/ + VideoFlash/) or pre-extracted frames, and its splits.

Release: ``AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`` and ``VideoFlash/<same>.flv``.
Pre-extracted (older research code): ``<root>/{train,val,test}/<clip>/frame_XXXX.jpg`` with the clip's
wav beside it (``<split>/<clip>.wav``, ``<split>/<clip>/<clip>.wav``, ``<split>/<clip>/audio.wav`` or
``<root>/AudioWAV/<clip>.wav``); its folders are the split.

Only the modalities asked for are required: the research code's video model read the frames alone and
its audio model ``AudioWAV/`` alone, and both layouts prepare with ``--modalities video`` / ``audio``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from qkf_snn.datasets.classes import CREMA_EMOTIONS
from qkf_snn.datasets.features import MODALITIES
from qkf_snn.datasets.records import SPLITS, ClipRecord, ScanResult, SkippedClip, rel_path
from qkf_snn.datasets.splits import (
    DEFAULT_TEST,
    DEFAULT_VAL,
    Assignment,
    carve_val,
    group_split,
    stratified_split,
)
from qkf_snn.errors import UserError

NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]+)_([A-Z]{2})$")
FRAME_GLOB = "frame_*.jpg"
RELEASE_DIRS = {"audio": "AudioWAV", "video": "VideoFlash"}
RELEASE_SUFFIX = {"audio": ".wav", "video": ".flv"}
LAYOUT = "AudioWAV/ and VideoFlash/ (CREMA-D release), or train/ val/ test/ folders of <clip>/frame_XXXX.jpg"


def parse_name(stem: str) -> tuple[str, str] | str:
    """(actor, emotion) from ``<actor>_<sentence>_<emotion>_<level>``, or the reason it is not usable."""
    m = NAME.match(stem)
    if not m:
        return f"name '{stem}' is not <actor>_<sentence>_<emotion>_<level>"
    actor, _sentence, emotion, _level = m.groups()
    if emotion not in CREMA_EMOTIONS:
        return f"unknown emotion code '{emotion}' (expected one of {', '.join(CREMA_EMOTIONS)})"
    return actor, emotion


def scan(raw: Path, options: dict) -> ScanResult:
    """Find every clip under a CREMA-D root, in either layout; only the asked modalities are required."""
    wanted = tuple(options.get("modalities", MODALITIES))
    has_audio, has_video = (raw / "AudioWAV").is_dir(), (raw / "VideoFlash").is_dir()
    need = [RELEASE_DIRS[m] for m in wanted]
    if has_audio and has_video:
        return _scan_release(raw, wanted)
    if any((raw / s).is_dir() for s in SPLITS):
        return _scan_frames(raw, wanted)
    if all((raw / d).is_dir() for d in need):
        return _scan_release(raw, wanted)
    if has_audio or has_video:
        present = "AudioWAV" if has_audio else "VideoFlash"
        missing = [d for d in need if not (raw / d).is_dir()]
        alone = "audio" if has_audio else "video"
        raise UserError(
            f"CREMA-D root {raw}: found {present}/ but not {missing[0]}/ "
            f"(--modalities {alone} uses {present}/ alone; expected {LAYOUT})"
        )
    raise UserError(f"CREMA-D root {raw}: expected {LAYOUT}")


def _scan_release(raw: Path, wanted: tuple[str, ...]) -> ScanResult:
    found = {
        m: {p.stem: p for p in (raw / RELEASE_DIRS[m]).iterdir() if p.suffix.lower() == RELEASE_SUFFIX[m]}
        for m in wanted
    }
    result = ScanResult()
    for stem in sorted(set().union(*found.values())):
        have = {m: files[stem] for m, files in found.items() if stem in files}
        path = next(iter(have.values()))
        parsed = parse_name(stem)
        lacking = [m for m in wanted if m not in have]
        if isinstance(parsed, str):
            result.skipped.append(SkippedClip(stem, rel_path(path, raw), parsed))
        elif lacking:
            m = lacking[0]
            reason = f"no matching {m} {RELEASE_DIRS[m]}/{stem}{RELEASE_SUFFIX[m]}"
            result.skipped.append(SkippedClip(stem, rel_path(path, raw), reason))
        else:
            actor, emotion = parsed
            video = (have["video"],) if "video" in have else ()
            result.records.append(
                ClipRecord(stem, emotion, have.get("audio"), video, "container", group=actor)
            )
    return result


def _scan_frames(raw: Path, wanted: tuple[str, ...]) -> ScanResult:
    result = ScanResult()
    for split in SPLITS:
        folder = raw / split
        if not folder.is_dir():
            continue
        # A clip is a folder of frames, or (audio only) a wav directly in the split folder.
        stems = {p.name for p in folder.iterdir() if p.is_dir()}
        if "video" not in wanted:
            stems |= {p.stem for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav"}
        for stem in sorted(stems):
            clip_dir = folder / stem
            where = clip_dir if clip_dir.is_dir() else folder / f"{stem}.wav"
            parsed = parse_name(stem)
            frames = tuple(sorted(clip_dir.glob(FRAME_GLOB))) if "video" in wanted else ()
            wav = None
            if "audio" in wanted:
                beside = (folder / f"{stem}.wav", clip_dir / f"{stem}.wav", clip_dir / "audio.wav")
                wav = next((p for p in (*beside, raw / "AudioWAV" / f"{stem}.wav") if p.is_file()), None)
            if isinstance(parsed, str):
                result.skipped.append(SkippedClip(stem, rel_path(where, raw), parsed))
            elif "video" in wanted and not frames:
                result.skipped.append(
                    SkippedClip(stem, rel_path(where, raw), f"no {FRAME_GLOB} in the folder")
                )
            elif "audio" in wanted and wav is None:
                reason = (
                    f"no audio beside the frames ({split}/{stem}.wav or {split}/{stem}/{stem}.wav; "
                    "--modalities video prepares the frames alone)"
                )
                result.skipped.append(SkippedClip(stem, rel_path(where, raw), reason))
            else:
                actor, emotion = parsed
                result.records.append(
                    ClipRecord(stem, emotion, wav, frames, "frames", group=actor, split=split)
                )
    result.records.sort(key=lambda r: r.clip_id)
    return result


# --- splits -------------------------------------------------------------------------------------


def split_stratified(records: list[ClipRecord], seed: int) -> Assignment:
    keys, labels = [r.clip_id for r in records], [r.label for r in records]
    return Assignment(list(stratified_split(keys, labels, val=DEFAULT_VAL, test=DEFAULT_TEST, seed=seed)))


def split_speaker(records: list[ClipRecord], seed: int) -> Assignment:
    groups = [r.group for r in records]
    return Assignment(list(group_split(groups, val=DEFAULT_VAL, test=DEFAULT_TEST, seed=seed)))


def split_folders(records: list[ClipRecord], seed: int) -> Assignment:
    if any(r.split is None for r in records):
        raise UserError("split 'folders' needs the pre-extracted layout (train/ val/ test/ folders)")
    splits: list[str] = [r.split or "train" for r in records]
    notes = []
    if "val" not in splits:
        keys, labels = [r.clip_id for r in records], [r.label for r in records]
        splits = carve_val(keys, labels, splits, val=DEFAULT_VAL, seed=seed)
        notes.append(f"no val/ folder: val is a stratified {DEFAULT_VAL:.0%} of train (seed {seed})")
    return Assignment(list(splits), notes=notes)


def default_split(records: list[ClipRecord]) -> str:
    return "folders" if records and all(r.split is not None for r in records) else "stratified"


def split_from_files(records: list[ClipRecord], where: Path, seed: int) -> Assignment:
    """External ``clip,emotion`` csv files (OGM-GE and followers): ``train.csv``, ``test.csv`` and, if
    present, ``val.csv``; without one, val is a stratified share carved from train."""
    folder = where.parent if where.is_file() else where
    files = {s: folder / f"{s}.csv" for s in ("train", "val", "test")}
    for s in ("train", "test"):
        if not files[s].is_file():
            raise UserError(f"--split {where}: missing {files[s].name} (expected train.csv and test.csv)")
    listed: dict[str, tuple[str, str]] = {}
    for side, path in files.items():
        if path.is_file():
            for clip, emotion in _read_split_csv(path):
                listed.setdefault(clip, (side, emotion))
    result = Assignment([None] * len(records))
    for i, r in enumerate(records):
        entry = listed.pop(r.clip_id, None)
        if entry is None:
            result.reasons[i] = f"not listed in the split files in {folder}"
        elif entry[1] != r.label:
            result.reasons[i] = f"split file says {entry[1]} but the file name says {r.label}"
        else:
            result.splits[i] = entry[0]
    if listed:
        result.notes.append(f"{len(listed)} clips listed in {folder} are not in the raw folder")
    if "val" not in result.splits:
        idx = [i for i, s in enumerate(result.splits) if s is not None]
        sub = carve_val(
            [records[i].clip_id for i in idx],
            [records[i].label for i in idx],
            [result.splits[i] or "train" for i in idx],
            val=DEFAULT_VAL,
            seed=seed,
        )
        for i, s in zip(idx, sub, strict=True):
            result.splits[i] = s
        result.notes.append(f"no val.csv: val is a stratified {DEFAULT_VAL:.0%} of train.csv (seed {seed})")
    return result


def _read_split_csv(path: Path) -> list[tuple[str, str]]:
    rows = []
    with open(path, newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise UserError(f"{path}:{lineno}: expected 'clip,emotion', got {','.join(row)!r}")
            clip, emotion = row[0].strip(), row[1].strip()
            if lineno == 1 and emotion not in CREMA_EMOTIONS:
                continue  # header line
            rows.append((Path(clip).stem, emotion))
    return rows
