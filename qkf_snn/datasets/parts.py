"""Per-clip results of a prepare in progress: ``parts/<fingerprint>.npz`` or ``.skip.json``.

A clip's fingerprint covers the feature settings and its source files (path, size, mtime), so a rerun
finds finished clips by name and redoes a clip only when its files or the settings changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from qkf_snn.datasets.clip import ClipArrays
from qkf_snn.datasets.features import FeatureParams
from qkf_snn.datasets.records import ClipRecord, rel_path
from qkf_snn.io import atomic_write, atomic_write_json


def fingerprint(record: ClipRecord, params: FeatureParams, raw: Path) -> str:
    """Stable id of (settings, sources, span): equal fingerprints give equal arrays."""
    sources = []
    for path in record.sources():
        st = path.stat() if path.exists() else None
        sources.append([rel_path(path, raw), st.st_size if st else -1, st.st_mtime_ns if st else -1])
    key = [params.key(), record.clip_id, record.video_kind, record.start, record.end, sources]
    return hashlib.sha1(json.dumps(key).encode()).hexdigest()[:20]


def part_path(parts: Path, fp: str) -> Path:
    return parts / f"{fp}.npz"


def skip_path(parts: Path, fp: str) -> Path:
    return parts / f"{fp}.skip.json"


def write_part(parts: Path, fp: str, arrays: ClipArrays) -> None:
    data = {"seconds": np.float64(arrays.seconds)}
    if arrays.audio is not None:
        data["audio"] = arrays.audio.astype(np.float16)
    if arrays.video is not None:
        data["video"] = arrays.video
    atomic_write(part_path(parts, fp), lambda fh: np.savez(fh, **data))


def write_skip(parts: Path, fp: str, reason: str, path: str) -> None:
    atomic_write_json(skip_path(parts, fp), {"reason": reason, "path": path})


def read_part(parts: Path, fp: str) -> dict[str, np.ndarray]:
    with np.load(part_path(parts, fp)) as z:
        return {k: z[k] for k in z.files}


def read_skip(parts: Path, fp: str) -> tuple[str, str] | None:
    """(reason, file) of a clip that could not be decoded, or None."""
    path = skip_path(parts, fp)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return str(data["reason"]), str(data["path"])
