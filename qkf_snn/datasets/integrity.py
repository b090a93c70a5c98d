"""Checksums of a prepared cache: recorded by ``prepare``, compared by ``qkf data info --verify`` and by
a rerun of ``prepare`` (which decodes again only the clips whose rows no longer match).

``CacheIndex.checksums``::

    algorithm  ALGORITHM
    index      sha256 of the index without its checksums (checked on every open: it is cheap)
    arrays     modality -> {file, bytes, sha256} of each .npy file, header included
    rows       modality -> crc32 of each row's bytes (row i = clip i): which clips are damaged
    cache      sha256 over the index digest and the array digests: the whole-cache checksum
"""

from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from qkf_snn.datasets.cache import INDEX_FILE, CacheIndex, index_digest, read_npy_header

ALGORITHM = "sha256 per file and of the index, crc32 per row"
CHUNK = 1 << 20
SHOWN_CLIPS = 3


@dataclass
class Verification:
    """What reading every byte of a cache found."""

    checked: bool  # False: the cache holds no checksums (prepared before they were recorded)
    problems: list[str] = field(default_factory=list)  # one line each: the file and what differs
    bad_rows: set[int] = field(default_factory=set)  # rows whose bytes differ from their crc32
    cache_digest: str = ""  # the whole-cache checksum of the bytes as they are now

    @property
    def ok(self) -> bool:
        return self.checked and not self.problems


def _read(path: Path) -> tuple[str, list[int], int]:
    """(sha256 of the file, crc32 of each row, size): one sequential pass."""
    shape, _fortran, dtype, offset = read_npy_header(path)
    row_bytes = math.prod(shape[1:]) * dtype.itemsize
    digest, crcs = hashlib.sha256(), []
    with open(path, "rb") as fh:
        digest.update(fh.read(offset))
        for _ in range(shape[0]):
            row = fh.read(row_bytes)
            digest.update(row)
            crcs.append(zlib.crc32(row))
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), crcs, path.stat().st_size


def _cache_digest(index_sha: str, arrays: dict[str, dict]) -> str:
    parts = [index_sha, *(f"{m}:{arrays[m]['sha256']}" for m in sorted(arrays))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def seal(cache_dir: Path, index: CacheIndex, reuse: dict | None = None) -> dict:
    """The checksums of ``index`` and its arrays as they are on disk; ``reuse``: the verified checksums
    of arrays that were not rewritten (saves reading them again)."""
    if reuse:
        arrays, rows = reuse["arrays"], reuse["rows"]
    else:
        arrays, rows = {}, {}
        for m in index.modalities:
            name = index.arrays[m]
            sha, crcs, size = _read(Path(cache_dir) / name)
            arrays[m], rows[m] = {"file": name, "bytes": size, "sha256": sha}, crcs
    index_sha = index_digest(index)
    return {
        "algorithm": ALGORITHM,
        "index": index_sha,
        "arrays": arrays,
        "rows": rows,
        "cache": _cache_digest(index_sha, arrays),
    }


def verify(cache_dir: Path, index: CacheIndex) -> Verification:
    """Read every array byte and compare with the recorded checksums (the index was checked on open)."""
    sums = index.checksums
    if not sums:
        return Verification(checked=False)
    try:
        recorded = {m: (sums["arrays"][m], list(sums["rows"][m])) for m in index.modalities}
        recorded_cache = str(sums["cache"])
    except (KeyError, TypeError):
        return Verification(checked=True, problems=[f"{INDEX_FILE}: its checksums are incomplete"])
    result = Verification(checked=True)
    now = {}
    for m in index.modalities:
        name = index.arrays[m]
        sha, crcs, _size = _read(Path(cache_dir) / name)
        now[m] = {"sha256": sha}
        want_file, want_rows = recorded[m]
        bad = [i for i, (a, b) in enumerate(zip(crcs, want_rows, strict=False)) if a != b]
        if bad:
            ids = ", ".join(str(index.clips[i]["id"]) for i in bad[:SHOWN_CLIPS])
            more = f" and {len(bad) - SHOWN_CLIPS} more" if len(bad) > SHOWN_CLIPS else ""
            result.problems.append(
                f"{name}: {len(bad)} of {len(crcs)} rows differ from their checksums (clips {ids}{more})"
            )
            result.bad_rows.update(bad)
        elif len(want_rows) != len(crcs) or sha != want_file.get("sha256"):
            result.problems.append(f"{name}: its bytes differ from the sha256 recorded by prepare")
    result.cache_digest = _cache_digest(index_digest(index), now)
    if not result.problems and result.cache_digest != recorded_cache:
        result.problems.append(f"{INDEX_FILE}: the whole-cache checksum differs from the one recorded")
    return result
