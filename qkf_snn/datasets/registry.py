"""The datasets ``prepare`` knows: name -> how to scan the raw layout and which splits exist.

This table is the one list of dataset names: the run configuration, the CLI help and the tests ask it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qkf_snn.datasets import ave, crema, folder, urbansound
from qkf_snn.datasets.classes import AVE_CLASSES, CREMA_EMOTIONS, US8K_CLASSES
from qkf_snn.datasets.records import ClipRecord, ScanResult
from qkf_snn.datasets.splits import Assignment
from qkf_snn.errors import UserError

SplitFn = Callable[[list[ClipRecord], int], Assignment]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's raw reader, named splits and defaults."""

    name: str
    classes: tuple[str, ...]  # canonical class order
    scan: Callable[[Path, dict], ScanResult]
    splits: dict[str, SplitFn]
    default_split: Callable[[list[ClipRecord]], str]
    clip_seconds: float  # default fixed span (see features.py)
    options: tuple[str, ...] = ()  # dataset-specific prepare options
    split_from_path: Callable[[list[ClipRecord], Path, int], Assignment] | None = None
    layout: str = ""  # one line: what the raw root must contain

    def assign(self, records: list[ClipRecord], split: str | None, seed: int) -> tuple[str, Assignment]:
        """Resolve a split name (or a split-file path) and assign every record."""
        name = split or self.default_split(records)
        if name in self.splits:
            return name, self.splits[name](records, seed)
        if self.split_from_path is not None and Path(name).exists():
            return f"file:{name}", self.split_from_path(records, Path(name), seed)
        choices = ", ".join(self.splits)
        extra = " or a folder with train.csv/test.csv" if self.split_from_path else ""
        raise UserError(f"--split {name!r}: unknown split for {self.name} (choose {choices}{extra})")


DATASETS: dict[str, DatasetSpec] = {
    "crema": DatasetSpec(
        name="crema",
        classes=tuple(CREMA_EMOTIONS),
        scan=crema.scan,
        splits={
            "stratified": crema.split_stratified,
            "speaker": crema.split_speaker,
            "folders": crema.split_folders,
        },
        default_split=crema.default_split,
        clip_seconds=3.0,
        split_from_path=crema.split_from_files,
        layout=crema.LAYOUT,
    ),
    "ave": DatasetSpec(
        name="ave",
        classes=AVE_CLASSES,
        scan=ave.scan,
        splits={"official": ave.split_official},
        default_split=lambda records: "official",
        clip_seconds=10.0,
        options=("event_crop",),
        layout="AVE/*.mp4 and Annotations.txt, trainSet.txt, valSet.txt, testSet.txt",
    ),
    "urbansound8k-av": DatasetSpec(
        name="urbansound8k-av",
        classes=US8K_CLASSES,
        scan=urbansound.scan,
        splits={"recording": urbansound.split_recording, "class-dir-70": urbansound.split_class_dir},
        default_split=lambda records: "recording",
        clip_seconds=4.0,
        layout="Dataset_v3_sound/<class>/*.wav and Dataset_v3_vision/<class>/*.jpg",
    ),
    "folder": DatasetSpec(
        name="folder",
        classes=(),  # the user's own: sorted folder names or labels
        scan=folder.scan,
        splits={
            "stratified": folder.split_stratified,
            "group": folder.split_group,
            "manifest": folder.split_manifest,
        },
        default_split=folder.default_split,
        clip_seconds=10.0,  # VGGSound and Kinetics-Sounds clips; shorter clips are tiled
        options=("manifest",),
        layout=folder.LAYOUT,
    ),
}


def dataset_names() -> tuple[str, ...]:
    """Every registered dataset, in registration order."""
    return tuple(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    """The spec for ``name``; a UserError naming the choices otherwise."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r} (choose {', '.join(DATASETS)})")
    return DATASETS[name]
