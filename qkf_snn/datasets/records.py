"""What a raw-layout reader finds: one :class:`ClipRecord` per clip, or a :class:`SkippedClip` why not."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

VideoKind = Literal["container", "frames", "image"]
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class ClipRecord:
    """One audio-visual clip on disk, before decoding."""

    clip_id: str  # unique within the dataset, e.g. "1001_DFA_ANG_XX" or a YouTube id
    label: str  # class name (see classes.py)
    audio: Path | None  # a wav (soundfile) or a container with an audio track (PyAV); None: not asked for
    video: tuple[Path, ...]  # one container or image, or the ordered frame jpgs of the clip; () if not asked
    video_kind: VideoKind
    group: str  # what group-aware splits keep on one side: actor, freesound recording, video id
    start: float = 0.0  # span to use inside the sources, seconds (AVE event crop)
    end: float | None = None  # None: to the end of the audio
    split: str | None = None  # fixed by the layout (pre-extracted folders, official lists), else None

    def sources(self) -> tuple[Path, ...]:
        """Every file the clip is decoded from, audio first."""
        audio = () if self.audio is None else (self.audio,)
        return (*audio, *(v for v in self.video if v != self.audio))

    @property
    def path(self) -> Path:
        """The file a report names for the clip: its audio, else its (first) video file."""
        return self.sources()[0]


@dataclass(frozen=True)
class SkippedClip:
    """A clip that is not in the cache, with the one file to look at and why."""

    clip_id: str
    path: str
    reason: str


@dataclass
class ScanResult:
    """Everything a reader found under a raw root: usable records and clips skipped while scanning."""

    records: list[ClipRecord] = field(default_factory=list)
    skipped: list[SkippedClip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader did beyond the obvious (for the report)

    @property
    def found(self) -> int:
        return len(self.records) + len(self.skipped)


def rel_path(path: Path, root: Path) -> str:
    """``path`` as reports show it: relative to the raw root when inside it, else as given."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
