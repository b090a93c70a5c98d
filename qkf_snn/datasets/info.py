"""What a cache holds: counts per split and class, settings, and how many clips were skipped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from qkf_snn.datasets.cache import CacheIndex
from qkf_snn.datasets.integrity import Verification, verify
from qkf_snn.datasets.records import SPLITS


@dataclass
class CacheInfo:
    """Summary of a cache for ``qkf data info``."""

    dataset: str
    split_name: str
    class_names: list[str]
    counts: dict[str, dict[str, int]]  # split -> class name -> clips
    params: dict
    modalities: list[str]
    skipped: int  # clips that could not be decoded (see report.json for all reasons)
    checksum: str  # the whole-cache checksum recorded by prepare; "" in caches made before them

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())


def cache_info(cache_dir: Path) -> CacheInfo:
    """Read ``index.json`` (checked against the arrays: see ``CacheIndex.load``) and count clips per
    split and class."""
    index = CacheIndex.load(Path(cache_dir))
    counts = {s: dict.fromkeys(index.class_names, 0) for s in SPLITS}
    for (split, label), n in Counter((c["split"], c["label"]) for c in index.clips).items():
        counts[split][index.class_names[label]] = n
    return CacheInfo(
        dataset=index.dataset,
        split_name=index.split_name,
        class_names=list(index.class_names),
        counts=counts,
        params=dict(index.params),
        modalities=list(index.modalities),
        skipped=len(index.skipped),
        checksum=str(index.checksums.get("cache", "")),
    )


def verify_cache(cache_dir: Path) -> Verification:
    """Open the cache (cheap checks) and compare every byte with the checksums recorded by prepare."""
    return verify(Path(cache_dir), CacheIndex.load(Path(cache_dir)))
