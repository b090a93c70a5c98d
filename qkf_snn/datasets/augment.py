"""Training augmentation applied to cached samples (never to the cache itself).

Frames: torchvision v2 random resized crop and horizontal flip, with one draw for all T frames of a
clip so motion stays coherent. Spectrogram: torchaudio frequency and time masking over the whole clip
(the T windows joined), so a time mask can straddle two steps as it would in the raw signal.
"""

from __future__ import annotations

import torch
import torchaudio.transforms as AT
from torchvision.transforms import v2


class VideoAugment:
    """[T, 3, H, W] float -> same shape; identical crop/flip for every step."""

    def __init__(self, size: int, scale: tuple[float, float] = (0.6, 1.0)) -> None:
        self.transform = v2.Compose(
            [v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.RandomHorizontalFlip()]
        )

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return self.transform(frames)  # v2 draws once for the whole tensor, leading dims are a batch


class AudioAugment:
    """[T, 1, F, W] normalised log-mel -> same shape, with masked bands/columns set to 0 (the mean)."""

    def __init__(self, n_mels: int, width: int, steps: int) -> None:
        self.freq = AT.FrequencyMasking(freq_mask_param=max(1, n_mels // 8))
        self.time = AT.TimeMasking(time_mask_param=max(1, steps * width // 8))

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        T, C, F, W = mel.shape
        joined = mel.permute(1, 2, 0, 3).reshape(C, F, T * W)
        joined = self.time(self.freq(joined))
        return joined.reshape(C, F, T, W).permute(2, 0, 1, 3).contiguous()
