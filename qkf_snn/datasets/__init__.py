"""Datasets: raw readers (CREMA-D, AVE, UrbanSound8K-AV, your own ``folder``), the decode-once cache,
synthetic sets.

prepare(dataset, raw, out, ...) -> PrepareReport   decode raw files once into a cache
CachedAVDataset(cache_dir, split, ...)             read the cache (memory-mapped, no decoding)
cache_info(cache_dir), verify_cache(cache_dir)      what a cache holds; compare it with its checksums
synthesize(dataset, out, clips=, seed=, **knobs)   write a synthetic set in the real raw layout
DATASETS                                           name -> DatasetSpec (the one list of datasets)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qkf_snn.datasets.cache import CacheError
from qkf_snn.datasets.info import CacheInfo, cache_info, verify_cache
from qkf_snn.datasets.prepare import prepare
from qkf_snn.datasets.registry import DATASETS, DatasetSpec
from qkf_snn.datasets.report import PrepareReport
from qkf_snn.datasets.synth import PRESETS, SynthKnobs, synthesize

if TYPE_CHECKING:
    from qkf_snn.datasets.dataset import CachedAVDataset


def __getattr__(name: str) -> Any:
    """``CachedAVDataset`` on first use: it needs torch (seconds to import), which `qkf --help` and
    the CLI's help texts (they read ``DATASETS``) should not pay for."""
    if name == "CachedAVDataset":
        from qkf_snn.datasets.dataset import CachedAVDataset

        return CachedAVDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "CacheError",
    "PRESETS",
    "CacheInfo",
    "CachedAVDataset",
    "DatasetSpec",
    "PrepareReport",
    "SynthKnobs",
    "cache_info",
    "prepare",
    "synthesize",
    "verify_cache",
]
