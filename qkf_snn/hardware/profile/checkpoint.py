"""Profile a training checkpoint over a split of a prepared cache (what `qkf profile` and `qkf demo`
call): load the model and its data the way training did, and count in eval mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qkf_snn.errors import UserError
from qkf_snn.hardware.profile.records import Profile
from qkf_snn.models.quant import QuantSpec, quantize_model


def profile_checkpoint(
    checkpoint: Path,
    data: Path,
    split: str,
    samples: int | None,
    batch_size: int,
    device: str,
    *,
    weight_bits: int | None = None,
    per_channel: bool = True,
) -> tuple[Profile, dict[str, Any]]:
    """The profile of ``checkpoint``'s model over the first ``samples`` (None: all) clips of ``split``
    in the cache ``data``, and the metadata the report records (checkpoint, split, device, ...).
    ``weight_bits``: profile its post-training quantization (what ``qkf export nir --weight-bits``
    writes); a QAT checkpoint is profiled as its own quantization either way."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from qkf_snn.hardware.profile.profiler import profile_model
    from qkf_snn.training.checkpoint import load_model
    from qkf_snn.training.data import build_dataset

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device}: not a device (cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available")
    spec = QuantSpec(weight_bits, per_channel) if weight_bits is not None else None
    loaded = load_model(checkpoint)
    dataset = build_dataset(loaded.config, data, split)
    if len(dataset) == 0:
        raise UserError(f"--split {split}: no samples in {data}")
    if samples is not None:
        dataset = Subset(dataset, range(min(samples, len(dataset))))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    model = loaded.model if spec is None else quantize_model(loaded.model, spec)
    model = model.to(dev)

    def forward(m, batch):
        return m({k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})

    prof = profile_model(model, loader, forward=forward)
    cfg = loaded.config
    meta = {
        "model_name": loaded.spec.name,
        "checkpoint": str(checkpoint),
        "checkpoint_kind": loaded.kind,
        "checkpoint_epoch": loaded.epoch,
        "checkpoint_metrics": loaded.metrics,
        "dataset": cfg.get("dataset"),
        "modality": loaded.spec.modality,
        "split": split,
        "data_dir": str(data),
        "device": str(dev),
        "batch_size": batch_size,
    }
    return prof, meta
