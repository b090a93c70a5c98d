"""Data pipeline benchmark: prepare throughput, and cached reading against decoding raw files per sample.

    .venv/bin/python benchmarks/bench_data.py                     # demo-sized synthetic CREMA-D
    .venv/bin/python benchmarks/bench_data.py --size real --clips 48   # 480x360 @ 30 fps, 2.5 s clips

Writes a synthetic CREMA-D set (release layout: wav + flv), then measures
  1. ``prepare`` with 1 and N decoding processes: clips/s and clips/s per worker;
  2. samples/s through a DataLoader over ``CachedAVDataset`` (memory-mapped, no decoding);
  3. samples/s through the same DataLoader over a dataset that decodes the raw wav + flv of each sample
     (what training without a cache would do), with the same features;
and prints a markdown table (paste it into docs/benchmarks.md). Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
import torchaudio
import torchvision
from torch.utils.data import DataLoader, Dataset

from qkf_snn.datasets import CachedAVDataset, prepare, synthesize
from qkf_snn.datasets.cache import CacheIndex
from qkf_snn.datasets.clip import decode_clip
from qkf_snn.datasets.crema import scan
from qkf_snn.datasets.features import FeatureParams

SIZES = {
    # What the demo trains on: 64x48 frames at 8 fps, 2 s.
    "small": dict(seconds=2.0),
    # The size of the real CREMA-D videos (480x360, 30 fps, ~2.5 s): decoding cost as on real data.
    "real": dict(seconds=2.5, width=480, height=360, fps=30),
}


class RawDecodingDataset(Dataset):
    """Decodes the raw files of each sample on every access (the baseline the cache replaces)."""

    def __init__(self, raw: Path, cache: Path) -> None:
        index = CacheIndex.load(cache)
        by_id = {r.clip_id: r for r in scan(raw, {}).records}
        self.records = [by_id[c["id"]] for c in index.clips if c["split"] == "train"]
        self.labels = [c["label"] for c in index.clips if c["split"] == "train"]
        p = index.params
        self.params = FeatureParams(
            p["time_steps"],
            p["sample_rate"],
            p["n_mels"],
            p["audio_width"],
            p["image_size"],
            p["clip_seconds"],
        )
        s = index.stats
        self.norm = {
            m: (torch.tensor(s[f"{m}_mean"]).view(1, -1, 1, 1), torch.tensor(s[f"{m}_std"]).view(1, -1, 1, 1))
            for m in ("audio", "video")
        }

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        arrays = decode_clip(self.records[i], self.params)
        audio = (torch.from_numpy(arrays.audio) - self.norm["audio"][0]) / self.norm["audio"][1]
        video = (torch.from_numpy(arrays.video).float() / 255 - self.norm["video"][0]) / self.norm["video"][1]
        return {"audio": audio, "video": video, "label": torch.tensor(self.labels[i]), "index": i}


def make_loader(dataset: Dataset, workers: int, batch: int) -> DataLoader:
    loader = DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )
    next(iter(loader))  # start the workers and map the files before timing
    return loader


def timed_read(loader: DataLoader, samples: int) -> float:
    """Samples per second reading at least ``samples`` samples (whole batches, epochs repeated)."""
    seen, start = 0, time.perf_counter()
    while seen < samples:
        for b in loader:
            seen += len(b["label"])
            if seen >= samples:
                break
    return seen / (time.perf_counter() - start)


def read_rates(variants: dict[str, tuple[DataLoader, int]], rounds: int) -> dict[str, float]:
    """Median samples/s per variant, timed interleaved (a, b, c, a, b, c, ...) so that load from other
    processes on a shared machine hits every variant alike."""
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (loader, samples) in variants.items():
            rates[name].append(timed_read(loader, samples))
    return {name: statistics.median(r) for name, r in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="decoding processes for the parallel prepare")
    parser.add_argument("--loader-workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median reported)")
    parser.add_argument(
        "--work", type=Path, default=None, help="folder to keep the data in (default: a temp dir)"
    )
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="qkf-bench-data-"))
    raw = work / f"crema-{args.size}"
    results: dict[str, float | str | int] = {"size": args.size, "clips": args.clips}
    start = time.perf_counter()
    synthesize("crema", raw, clips=args.clips, seed=0, **SIZES[args.size])
    results["synth_s"] = round(time.perf_counter() - start, 2)
    common = dict(clip_seconds=SIZES[args.size]["seconds"], progress=False)
    for workers in sorted({1, args.workers}):
        out = work / f"cache-w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        report = prepare("crema", raw, out, workers=workers, **common)
        results[f"prepare_w{workers}_clips_s"] = round(report.clips_per_second, 1)
        results[f"prepare_w{workers}_per_worker"] = round(report.clips_per_second / workers, 1)
    cache = work / "cache-w1"
    torch.set_num_threads(1)  # per-sample tensors are tiny: intra-op threads only contend
    variants: dict[str, tuple[DataLoader, int]] = {}
    for w in sorted({0, args.loader_workers}):
        for name, ds, samples in (
            ("cached", CachedAVDataset(cache, "train"), 8 * args.batch_size),
            ("cached_augment", CachedAVDataset(cache, "train", augment=True), 4 * args.batch_size),
            ("raw_decode", RawDecodingDataset(raw, cache), args.batch_size),
        ):
            variants[f"{name}_lw{w}"] = (make_loader(ds, w, args.batch_size), samples)
    for name, rate in read_rates(variants, args.rounds).items():
        results[f"{name}_samples_s"] = round(rate, 1)
    for w in sorted({0, args.loader_workers}):
        results[f"speedup_lw{w}"] = round(
            results[f"cached_lw{w}_samples_s"] / results[f"raw_decode_lw{w}_samples_s"], 1
        )
    best = max(results[f"cached_lw{w}_samples_s"] for w in sorted({0, args.loader_workers}))
    results["speedup_best_vs_best"] = round(
        best / max(results[f"raw_decode_lw{w}_samples_s"] for w in sorted({0, args.loader_workers})), 1
    )
    results["cache_mb"] = round(sum(p.stat().st_size for p in cache.glob("*.npy")) / 2**20, 1)
    results["raw_mb"] = round(sum(p.stat().st_size for p in raw.rglob("*") if p.is_file()) / 2**20, 1)
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} logical cores, load {os.getloadavg()[0]:.1f}"
    )
    results["versions"] = (
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"torchaudio {torchaudio.__version__}, torchvision {torchvision.__version__}, "
        f"av {av.__version__}, numpy {np.__version__}"
    )
    print(json.dumps(results, indent=1))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
