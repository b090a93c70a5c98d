"""What a prepare run did: counts that add up (found = prepared + skipped) and why each clip was skipped."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qkf_snn.datasets.records import SkippedClip
from qkf_snn.io import atomic_write_json


@dataclass
class PrepareReport:
    """Summary of one ``prepare`` run (also written to ``<out>/report.json``)."""

    dataset: str
    raw: str
    out: str
    split: str  # split name used
    found: int  # clips seen in the raw layout (files, or entries of the annotation lists)
    prepared: int  # clips in the cache
    skipped: int  # clips left out; found == prepared + skipped
    decoded: int = 0  # clips decoded by this run
    reused: int = 0  # clips taken from an earlier (interrupted or complete) run
    splits: dict[str, int] = field(default_factory=dict)  # prepared clips per split
    skipped_clips: list[SkippedClip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    workers: int = 1
    seconds: float = 0.0  # wall time of the run

    @property
    def clips_per_second(self) -> float:
        return self.decoded / self.seconds if self.seconds > 0 and self.decoded else 0.0

    def reasons(self) -> dict[str, int]:
        """How many clips were skipped for each reason (the text before any per-file detail)."""
        return dict(Counter(s.reason.split(":")[0].split(" (")[0] for s in self.skipped_clips))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["clips_per_second"] = round(self.clips_per_second, 3)
        return d

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_dict())
