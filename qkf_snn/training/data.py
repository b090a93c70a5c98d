"""Datasets and loaders for training: the cached dataset of a config, and resumable, DDP-aware
sampling whose order and augmentation depend only on (seed, epoch, position), never on how many
times the process was started.

* Order: epoch e's permutation comes from a generator seeded with (seed, e); each rank takes every
  world_size-th index (train: padded to a multiple of world_size, as DistributedSampler does; eval:
  no padding, so every clip is counted exactly once). ``set_epoch(e, start)`` skips what a killed run
  had already trained.
* Augmentation: the sampler yields ``(index, epoch)`` keys; :class:`SeededView` seeds torch's RNG
  from (seed, epoch, index) around each augmented ``__getitem__``, so a clip gets the same crop and
  masks in a resumed run, with any number of DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from qkf_snn.errors import UserError
from qkf_snn.training.config import TrainConfig

MODALITIES_OF = {"audio": ("audio",), "video": ("video",), "av": ("audio", "video")}


def as_config(config: TrainConfig | dict[str, Any]) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    return TrainConfig.from_dict(config, source="checkpoint config")


def build_dataset(
    config: TrainConfig | dict[str, Any],
    data_dir: str | Path | None,
    split: str,
    *,
    augment: bool = False,
) -> Any:
    """The ``CachedAVDataset`` split a run reads: the config's modalities and time steps, from
    ``data_dir`` (else the config's ``data.dir``). ``config`` may be a ``TrainConfig`` or the dict
    of a checkpoint (``load_model(path).config``)."""
    from qkf_snn.datasets import CachedAVDataset  # the datasets layer, imported when first needed

    cfg = as_config(config)
    folder = data_dir if data_dir is not None else cfg.data.dir
    if folder is None:
        raise UserError("--data: no cache given (the folder `qkf data prepare --out` wrote)")
    ds = CachedAVDataset(
        folder,
        split,
        modalities=MODALITIES_OF[cfg.modality],
        augment=augment,
        time_steps=cfg.data.time_steps,
    )
    cached = getattr(getattr(ds, "index", None), "dataset", cfg.dataset)
    if cached != cfg.dataset:
        raise UserError(f"--data {folder}: holds a {cached} cache, but the run is for {cfg.dataset}")
    return ds


def step_seed(seed: int, step: int) -> int:
    """The seed of the ``step``-th stream of a run (an epoch's order, a step's gradient noise): distinct
    for every (seed, step) with step < 1,000,003."""
    return seed * 1_000_003 + step


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one clip in one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0] >> 1)


class SeededView(Dataset):
    """``dataset[index]`` for keys ``(index, epoch)``, with augmentation seeded per clip and epoch."""

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, epoch = key
        if not getattr(self.dataset, "augment", False):
            return self.dataset[index]
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream untouched
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.dataset[index]


class EpochSampler(Sampler[tuple[int, int]]):
    """One rank's ``(index, epoch)`` keys for one epoch, from position ``start`` on."""

    def __init__(
        self, size: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1, pad: bool = True
    ) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select epoch ``epoch`` and skip its first ``start`` keys of this rank."""
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        """This rank's full list for the current epoch."""
        if self.shuffle:
            g = torch.Generator().manual_seed(step_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        if self.pad and self.size % self.world_size:
            extra = self.world_size - self.size % self.world_size
            order += (order * (extra // len(order) + 1))[:extra]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.indices()[self.start :]:
            yield index, self.epoch

    def __len__(self) -> int:
        return max(0, len(self.indices()) - self.start)


def per_rank_batch(batch_size: int, world_size: int) -> int:
    if batch_size % world_size:
        raise UserError(f"--batch-size {batch_size}: must be divisible by the {world_size} processes")
    return batch_size // world_size


def make_loader(
    dataset: Any,
    *,
    batch_size: int,
    train: bool,
    seed: int,
    workers: int,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """A loader over :class:`SeededView` with an :class:`EpochSampler` (``loader.sampler``).
    Train batches drop the incomplete last batch (BatchNorm wants more than one sample) unless the
    rank's share is smaller than one batch."""
    sampler = EpochSampler(
        len(dataset), shuffle=train, seed=seed, rank=rank, world_size=world_size, pad=train
    )
    share = len(sampler.indices())
    return DataLoader(
        SeededView(dataset, seed),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=train and share >= batch_size,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )


def to_device(
    batch: dict[str, Any], modalities: tuple[str, ...], device: torch.device
) -> dict[str, torch.Tensor]:
    """The model's modalities of a batch on ``device`` (labels separate)."""
    nb = device.type == "cuda"
    return {m: batch[m].to(device, non_blocking=nb) for m in modalities}
