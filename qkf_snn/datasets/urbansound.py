"""UrbanSound8K-AV: ``Dataset_v3_sound/<class>/<name>.wav`` + ``Dataset_v3_vision/<class>/<name>.jpg``.

Names follow UrbanSound8K, ``<fsID>-<classID>-<occurrenceID>-<sliceID>``: all slices cut from one
freesound recording share the fsID, which the recording-aware split keeps on one side.
"""

from __future__ import annotations

import re
from pathlib import Path

from qkf_snn.datasets.classes import US8K_CLASSES
from qkf_snn.datasets.features import MODALITIES
from qkf_snn.datasets.records import ClipRecord, ScanResult, SkippedClip, rel_path
from qkf_snn.datasets.splits import (
    DEFAULT_TEST,
    DEFAULT_VAL,
    Assignment,
    listing_split,
    stratified_group_split,
)
from qkf_snn.errors import UserError

SOUND, VISION = "Dataset_v3_sound", "Dataset_v3_vision"
NAME = re.compile(r"^(\d+)-(\d+)-(\d+)-(\d+)$")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
FOLDERS = {"audio": SOUND, "video": VISION}
SUFFIXES = {"audio": {".wav"}, "video": IMAGE_SUFFIXES}
LAYOUT = {"audio": f"{SOUND}/<class>/*.wav", "video": f"{VISION}/<class>/*.jpg"}


def scan(raw: Path, options: dict) -> ScanResult:
    """Pair every wav with the image of the same name in the same class folder (or take the one
    modality asked for alone: its folder is then the only one required)."""
    wanted = tuple(options.get("modalities", MODALITIES))
    folders = {m: FOLDERS[m] for m in wanted}
    missing = [d for d in folders.values() if not (raw / d).is_dir()]
    if missing:
        raise UserError(
            f"UrbanSound8K-AV root {raw}: missing {' and '.join(d + '/' for d in missing)} "
            f"(expected {' and '.join(LAYOUT[m] for m in wanted)})"
        )
    classes = sorted({p.name for d in folders.values() for p in (raw / d).iterdir() if p.is_dir()})
    result = ScanResult()
    for label in classes:
        found = {m: _files(raw / d / label, SUFFIXES[m]) for m, d in folders.items()}
        for stem in sorted(set().union(*found.values())):
            have = {m: files[stem] for m, files in found.items() if stem in files}
            path = next(iter(have.values()))
            rel = rel_path(path, raw)
            m = NAME.match(stem)
            if "video" in wanted and "video" not in have:
                result.skipped.append(
                    SkippedClip(stem, rel, f"no matching image {VISION}/{label}/{stem}.jpg")
                )
            elif "audio" in wanted and "audio" not in have:
                result.skipped.append(SkippedClip(stem, rel, f"no matching audio {SOUND}/{label}/{stem}.wav"))
            elif m and label in US8K_CLASSES and int(m[2]) != US8K_CLASSES.index(label):
                reason = f"classID {m[2]} in the name does not match the folder '{label}'"
                result.skipped.append(SkippedClip(stem, rel, reason))
            else:
                # Without a parsable name the clip is its own recording: the split stays valid.
                group = m[1] if m else stem
                image = (have["video"],) if "video" in have else ()
                result.records.append(ClipRecord(stem, label, have.get("audio"), image, "image", group))
    result.records.sort(key=lambda r: (r.label, r.clip_id))
    return result


def _files(folder: Path, suffixes: set[str]) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in folder.iterdir() if p.suffix.lower() in suffixes}


def split_recording(records: list[ClipRecord], seed: int) -> Assignment:
    groups, labels = [r.group for r in records], [r.label for r in records]
    return Assignment(
        list(stratified_group_split(groups, labels, val=DEFAULT_VAL, test=DEFAULT_TEST, seed=seed))
    )


def split_class_dir(records: list[ClipRecord], seed: int) -> Assignment:
    keys, labels = [r.clip_id for r in records], [r.label for r in records]
    note = (
        "class-dir-70: first 70% of each class folder (sorted names) for training as in published "
        "work (S-CMRL); slices of one recording can fall on both sides"
    )
    return Assignment(list(listing_split(keys, labels)), notes=[note])
