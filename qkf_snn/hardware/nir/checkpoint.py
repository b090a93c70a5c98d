"""Export and verify straight from training checkpoints and prepared data (what the CLI calls)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np

from qkf_snn.errors import UserError
from qkf_snn.hardware.nir.export import build_graph
from qkf_snn.hardware.nir.io import read_graph, write_graph
from qkf_snn.hardware.nir.readers import reader_names
from qkf_snn.hardware.nir.summary import GraphSummary, summarize
from qkf_snn.hardware.nir.targets import DEFAULT_TARGET
from qkf_snn.hardware.nir.verify import Precision, VerifyReport, collate, verify_graph
from qkf_snn.io import check_destination
from qkf_snn.models.quant import QuantSpec, quant_spec_of, quantize_model


@dataclass
class ExportResult:
    path: Path
    graph: nir.NIRGraph
    summary: GraphSummary


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    dt: float | None = None,
    target: str = DEFAULT_TARGET,
    weight_bits: int | None = None,
    per_channel: bool = True,
) -> ExportResult:
    """Write the NIR graph of a checkpoint's model to ``out`` (BN folded, in the form of ``target``)
    and summarise it. ``weight_bits``: post-training quantization (:func:`quantize_model`) to
    integer weights; a QAT checkpoint is exported at its own bits when none are given."""
    from qkf_snn.training.checkpoint import load_model  # the training layer, only when exporting a run

    spec = QuantSpec(weight_bits, per_channel) if weight_bits is not None else None
    check_destination(out, "--out", "file")  # before the work, not after it
    loaded = load_model(checkpoint)
    model = loaded.model
    spec = spec or quant_spec_of(model)
    if spec is not None:
        model = quantize_model(model, spec)
    graph = build_graph(model, dt=dt, target=target)
    graph.metadata.update(
        checkpoint=Path(checkpoint).name,
        checkpoint_kind=loaded.kind,
        checkpoint_epoch=int(loaded.epoch),
        model_name=loaded.spec.name,
        modality=loaded.spec.modality,
        dataset=str(loaded.config.get("dataset", "")),
        class_names=json.dumps(list(loaded.class_names)),
    )
    path = write_graph(out, graph)
    return ExportResult(path, graph, summarize(graph))


def spread_indices(n_items: int, samples: int) -> list[int]:
    """``samples`` indices spread evenly over ``n_items`` (all of them if fewer)."""
    if samples < 1:
        raise UserError(f"--samples must be >= 1, got {samples}")
    if samples >= n_items:
        return list(range(n_items))
    return sorted({int(round(i)) for i in np.linspace(0, n_items - 1, samples)})


def verify_checkpoint(
    graph_file: str | Path,
    checkpoint: str | Path,
    data: str | Path | None,
    *,
    reader: str = "qkf",
    **options: Any,
) -> VerifyReport:
    """Run ``graph_file`` in ``reader`` and the checkpoint's model on ``samples`` clips of ``split``:
    :func:`verify_readers` (same ``options``) with one reader."""
    return verify_readers(graph_file, checkpoint, data, readers=reader, **options)[0]


def verify_readers(
    graph_file: str | Path,
    checkpoint: str | Path,
    data: str | Path | None,
    *,
    samples: int = 8,
    split: str = "val",
    batch_size: int = 8,
    precision: Precision = "pinned",
    check_fold: bool = True,
    readers: str = "qkf",
) -> list[VerifyReport]:
    """One report per reader of ``readers`` (a name, comma-separated names or ``all``), all on the
    same clips; the BN fold comparison only in the first."""
    names = reader_names(readers)
    from qkf_snn.training.checkpoint import load_model
    from qkf_snn.training.data import build_dataset

    graph = read_graph(graph_file)
    loaded = load_model(checkpoint)
    dataset = build_dataset(loaded.config, data, split)
    if len(dataset) == 0:
        raise UserError(f"--data {data}: split {split!r} is empty")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    items = [dataset[i] for i in spread_indices(len(dataset), samples)]
    batches = [collate(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    return [
        verify_graph(
            graph, loaded.model, batches, precision=precision, check_fold=check_fold and i == 0, reader=name
        )
        for i, name in enumerate(names)
    ]
