"""Assemble per-clip results into the cache arrays and index (the last step of ``prepare``)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qkf_snn.datasets.cache import ARRAY_DTYPES, CacheIndex, array_shape, open_array
from qkf_snn.datasets.features import FeatureParams
from qkf_snn.datasets.parts import read_part
from qkf_snn.datasets.records import ClipRecord
from qkf_snn.io import atomic_path


@dataclass
class Row:
    """One prepared clip: where its arrays are (a part file, or a row of the previous cache)."""

    record: ClipRecord
    split: str
    label: int
    fingerprint: str
    previous_row: int | None = None  # row in the previous cache holding the same fingerprint
    seconds: float = 0.0


def shapes(params: FeatureParams, n: int) -> dict[str, tuple[int, ...]]:
    return {m: array_shape(params.to_dict(), m, n) for m in params.modalities}


def generation(params: FeatureParams, rows: list[Row]) -> str:
    key = [params.key(), [(r.fingerprint, r.split, r.label) for r in rows]]
    return hashlib.sha1(json.dumps(key).encode()).hexdigest()[:12]


class _Stats:
    """Running mean / std over the train rows (float64 sums: exact enough for millions of values)."""

    def __init__(self, axis: tuple[int, ...]) -> None:
        self.axis, self.n, self.s, self.ss = axis, 0, 0.0, 0.0

    def add(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        self.n += x.size // np.asarray(x.sum(axis=self.axis)).size
        self.s = self.s + x.sum(axis=self.axis)
        self.ss = self.ss + (x * x).sum(axis=self.axis)

    def result(self) -> tuple[list[float], list[float]]:
        n = max(self.n, 1)
        mean = np.atleast_1d(self.s / n)
        std = np.sqrt(np.maximum(np.atleast_1d(self.ss / n) - mean**2, 1e-12))
        return mean.tolist(), std.tolist()


def write_arrays(
    out: Path, rows: list[Row], params: FeatureParams, gen: str, parts: Path, previous: CacheIndex | None
) -> tuple[dict[str, str], dict[str, list[float]]]:
    """Fill one memory-mapped .npy per modality (temp file + rename); returns names and train stats."""
    names = {m: f"{m}-{gen}.npy" for m in params.modalities}
    old = {m: open_array(out, previous, m) for m in params.modalities} if previous else {}
    # Audio: one mean/std over everything (dB); video: per channel, in [0, 1] units.
    stats = {"audio": _Stats(axis=(0, 1, 2, 3, 4)), "video": _Stats(axis=(0, 1, 3, 4))}
    full = shapes(params, len(rows))
    with contextlib.ExitStack() as stack:
        arrays = {}
        for m in params.modalities:
            tmp = stack.enter_context(atomic_path(out / names[m]))
            arrays[m] = np.lib.format.open_memmap(tmp, mode="w+", dtype=ARRAY_DTYPES[m], shape=full[m])
            # Reserve the blocks now: a full disk is then an OSError here, not a SIGBUS when a page
            # of the (sparse) map is first written.
            with open(tmp, "r+b") as fh, contextlib.suppress(NotImplementedError):
                try:
                    os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
                except OSError as err:
                    if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # not on every file system
                        raise
        for i, row in enumerate(rows):
            data = read_part(parts, row.fingerprint) if row.previous_row is None else None
            for m in params.modalities:
                value = old[m][row.previous_row] if data is None else data[m]
                arrays[m][i] = value
                if row.split == "train":
                    stats[m].add(value[None].astype(np.float32) / (255.0 if m == "video" else 1.0))
            if data is not None:
                row.seconds = float(data["seconds"])
        for m in list(arrays):
            arrays.pop(m).flush()  # flush and drop the map before the rename at the end of the `with`
    out_stats = {}
    for m in params.modalities:
        mean, std = stats[m].result()
        out_stats[f"{m}_mean"], out_stats[f"{m}_std"] = mean, std
    return names, out_stats
