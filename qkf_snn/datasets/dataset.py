"""``CachedAVDataset``: samples from a prepared cache, memory-mapped, without decoding anything."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from qkf_snn.datasets.cache import CacheIndex, open_array
from qkf_snn.datasets.records import SPLITS
from qkf_snn.errors import UserError


class CachedAVDataset(Dataset):
    """One split of a prepared cache.

    ``ds[i]`` is ``{"audio": float32 [T, 1, F, W], "video": float32 [T, 3, H, W], "label": int64 tensor,
    "index": i}`` with only the requested modalities; both are normalised with the train-split mean and
    std stored in the cache. Audio step t and frame t cover the same time (see features.py).

    ``time_steps`` may be a divisor of the cache's T: consecutive windows are then joined (audio width
    grows by T / time_steps) and the middle frame of each group is used.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        split: str,
        modalities: Sequence[str] = ("audio", "video"),
        augment: bool = False,
        time_steps: int | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.index = CacheIndex.load(self.cache_dir)
        if split not in SPLITS:
            raise UserError(f"split {split!r}: unknown (choose {', '.join(SPLITS)})")
        self.modalities = tuple(modalities)
        self.modalities_available = tuple(self.index.modalities)
        missing = [m for m in self.modalities if m not in self.modalities_available]
        if not self.modalities or set(self.modalities) - {"audio", "video"}:
            raise UserError(f"modalities {self.modalities}: choose 'audio', 'video' or both")
        if missing:
            raise UserError(
                f"cache {self.cache_dir}: holds no {' or '.join(missing)} "
                f"(only {', '.join(self.modalities_available)}; prepare with --modalities audio,video)"
            )
        self.split = split
        self.rows = np.asarray(self.index.rows(split), dtype=np.int64)
        if self.rows.size == 0:
            raise UserError(f"cache {self.cache_dir}: split {split!r} is empty")
        self.class_names: list[str] = list(self.index.class_names)
        self.num_classes = len(self.class_names)
        self.labels: list[int] = [int(self.index.clips[r]["label"]) for r in self.rows]
        self.clip_ids: list[str] = [self.index.clips[r]["id"] for r in self.rows]

        p = self.index.params
        cache_steps = int(p["time_steps"])
        self.time_steps = cache_steps if time_steps is None else int(time_steps)
        if self.time_steps < 1 or cache_steps % self.time_steps:
            raise UserError(
                f"time_steps {time_steps}: must divide the cache's T={cache_steps} "
                "(prepare again with --time-steps for another T)"
            )
        self._group = cache_steps // self.time_steps
        self.audio_shape = (1, int(p["n_mels"]), int(p["audio_width"]) * self._group)
        self.video_shape = (3, int(p["image_size"]), int(p["image_size"]))
        stats = self.index.stats
        self._norm = {
            m: (
                torch.tensor(stats[f"{m}_mean"], dtype=torch.float32).view(1, -1, 1, 1),
                torch.tensor(stats[f"{m}_std"], dtype=torch.float32).view(1, -1, 1, 1),
            )
            for m in self.modalities
        }
        self.augment = augment
        self._audio_aug = self._video_aug = None
        if augment:
            # Imported here: torchvision takes seconds to import and evaluation never needs it.
            from qkf_snn.datasets.augment import AudioAugment, VideoAugment

            self._audio_aug = AudioAugment(int(p["n_mels"]), int(p["audio_width"]), cache_steps)
            self._video_aug = VideoAugment(int(p["image_size"]))
        self._arrays: dict[str, np.ndarray] | None = None
        self._pid = -1

    def __len__(self) -> int:
        return int(self.rows.size)

    def _open(self) -> dict[str, np.ndarray]:
        # Map lazily and once per process: DataLoader workers each get their own maps.
        if self._arrays is None or self._pid != os.getpid():
            self._arrays = {m: open_array(self.cache_dir, self.index, m) for m in self.modalities}
            self._pid = os.getpid()
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"], state["_pid"] = None, -1  # maps are reopened in the receiving process
        return state

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = int(self.rows[i])
        arrays = self._open()
        sample: dict[str, Any] = {}
        if "audio" in self.modalities:
            mel = torch.from_numpy(np.array(arrays["audio"][row], dtype=np.float32))
            mean, std = self._norm["audio"]
            mel = (mel - mean) / std
            if self._audio_aug is not None:
                mel = self._audio_aug(mel)
            sample["audio"] = self._join_steps(mel)
        if "video" in self.modalities:
            frames = np.array(arrays["video"][row][self._group // 2 :: self._group])  # copy out of the map
            video = torch.from_numpy(frames).float().div_(255.0)
            mean, std = self._norm["video"]
            video = (video - mean) / std
            if self._video_aug is not None:
                video = self._video_aug(video)
            sample["video"] = video.contiguous()
        sample["label"] = torch.tensor(self.labels[i], dtype=torch.int64)
        sample["index"] = i
        return sample

    def _join_steps(self, mel: torch.Tensor) -> torch.Tensor:
        """[T, 1, F, W] -> [T / g, 1, F, g·W]: g consecutive windows side by side."""
        if self._group == 1:
            return mel.contiguous()
        T, C, F, W = mel.shape
        g = self._group
        return mel.view(T // g, g, C, F, W).permute(0, 2, 3, 1, 4).reshape(T // g, C, F, g * W)

    def __repr__(self) -> str:
        return (
            f"CachedAVDataset({str(self.cache_dir)!r}, split={self.split!r}, n={len(self)}, "
            f"classes={self.num_classes}, T={self.time_steps}, modalities={self.modalities})"
        )
