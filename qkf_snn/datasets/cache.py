"""The decode-once cache on disk.

    <out>/index.json          what is cached: settings, classes, one entry per clip, array files, stats
    <out>/audio-<gen>.npy     float16 [N, T, 1, F, W] log-mel in dB (memory-mappable .npy)
    <out>/video-<gen>.npy     uint8   [N, T, 3, S, S] RGB frames
    <out>/report.json         the last prepare report (found / prepared / skipped, with reasons)
    <out>/parts/              per-clip results of a prepare in progress (removed when it completes)

``index.json`` is written last and atomically, so it only ever names complete array files; ``<gen>`` is
a hash of the settings and clip list, so a rerun that changes nothing rewrites nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qkf_snn.errors import UserError
from qkf_snn.io import atomic_write_json

INDEX_FILE = "index.json"
REPORT_FILE = "report.json"
PARTS_DIR = "parts"
FORMAT = "qkf-av-cache"
VERSION = 1
ARRAY_DTYPES = {"audio": np.float16, "video": np.uint8}


@dataclass
class CacheIndex:
    """Contents of ``index.json``."""

    dataset: str
    split_name: str  # e.g. "stratified", "speaker", "official", "file:/path/to/splits"
    params: dict  # FeatureParams.to_dict()
    class_names: list[str]
    modalities: list[str]
    clips: list[dict]  # per row: id, label (int), split, group, fingerprint, seconds
    arrays: dict[str, str]  # modality -> file name in the cache folder
    stats: dict[str, list[float]]  # normalisation from the train split: {audio,video}_{mean,std}
    skipped: list[dict] = field(default_factory=list)  # decode failures: clip_id, path, reason, fingerprint
    generation: str = ""
    format: str = FORMAT
    version: int = VERSION

    @classmethod
    def load(cls, cache_dir: Path) -> CacheIndex:
        """Read ``index.json``; a UserError with one line if the folder is not a complete cache."""
        path = Path(cache_dir) / INDEX_FILE
        if not Path(cache_dir).is_dir():
            raise UserError(f"cache {cache_dir}: no such directory (run `qkf data prepare` first)")
        if not path.is_file():
            raise UserError(
                f"cache {cache_dir}: no {INDEX_FILE} (not a prepared cache; run `qkf data prepare`)"
            )
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"cache {path}: unreadable ({err})") from err
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise UserError(f"cache {path}: not a {FORMAT} v{VERSION} index")
        index = cls(**data)
        if not index.clips:
            raise UserError(f"cache {cache_dir}: empty (no clips)")
        for name in index.arrays.values():
            if not (Path(cache_dir) / name).is_file():
                raise UserError(f"cache {cache_dir}: array file {name} is missing")
        return index

    def save(self, cache_dir: Path) -> None:
        atomic_write_json(Path(cache_dir) / INDEX_FILE, asdict(self))

    def rows(self, split: str) -> list[int]:
        return [i for i, c in enumerate(self.clips) if c["split"] == split]

    @property
    def time_steps(self) -> int:
        return int(self.params["time_steps"])


def open_array(cache_dir: Path, index: CacheIndex, modality: str) -> np.ndarray:
    """Memory-map one modality's array read-only (cheap: nothing is read until indexed)."""
    return np.load(Path(cache_dir) / index.arrays[modality], mmap_mode="r")
