"""Evaluate a saved checkpoint on one split of a cache (``qkf eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from qkf_snn.errors import UserError
from qkf_snn.training.build import DataInfo, check_model_fits
from qkf_snn.training.checkpoint import load_model
from qkf_snn.training.data import build_dataset, make_loader
from qkf_snn.training.distributed import resolve_device
from qkf_snn.training.loop import evaluate, mixed_precision

SPLITS = ("train", "val", "test")


def evaluate_checkpoint(
    checkpoint: str | Path,
    data_dir: str | Path | None,
    split: str = "test",
    *,
    batch_size: int = 64,
    workers: int = 0,
    device: str = "auto",
    weight_bits: int | None = None,
) -> dict[str, Any]:
    """Metrics of the checkpoint's model on ``split`` (no augmentation), with where they came from.
    ``weight_bits``: of the model after post-training quantization (what ``qkf export nir
    --weight-bits`` exports, per output channel)."""
    if split not in SPLITS:
        raise UserError(f"--split {split!r}: choose one of {', '.join(SPLITS)}")
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")
    loaded = load_model(checkpoint)
    dataset = build_dataset(loaded.config, data_dir, split)
    info = DataInfo.of(dataset)
    source = f"checkpoint {checkpoint} vs --data {data_dir or loaded.config['data']['dir']}"
    check_model_fits(loaded.model, info, source)
    if info.class_names != loaded.data.class_names:
        raise UserError(f"{source}: the cache's classes differ from the ones the model was trained on")
    for modality in loaded.model.modalities:
        want = getattr(loaded.data, f"{modality}_shape")
        have = getattr(info, f"{modality}_shape")
        if want != have:
            raise UserError(
                f"{source}: {modality} steps are {list(have)} in the cache, {list(want)} in training"
            )
    dev = resolve_device(device)
    model = loaded.model
    if weight_bits is not None:
        from qkf_snn.models.quant import QuantSpec, quantize_model

        model = quantize_model(model, QuantSpec(weight_bits))
    model = model.to(dev)
    # the run's precision (bf16 on a GPU unless it trained in fp32), so that the numbers match its own
    amp = loaded.config["run"]["amp"]
    _, autocast = mixed_precision("none" if amp == "fp16" and dev.type != "cuda" else amp, dev)
    loader = make_loader(dataset, batch_size=batch_size, train=False, seed=0, workers=workers)
    with torch.no_grad():
        metrics = evaluate(model, loader, info.num_classes, model.modalities, dev, autocast)
    return {
        "checkpoint": str(checkpoint),
        "split": split,
        "epoch": loaded.epoch,
        "class_names": info.class_names,
        **metrics,
    }
