"""Step-by-step comparison of an NIR graph, run in one reader of :data:`.readers.READERS` (our Norse
bridge, stock snnTorch, stock Norse), with the PyTorch model it came from.

The reference is the model with BN folded (:func:`.fold.fold_batchnorm`): the graph holds folded
weights, so only the folded model can agree bit for bit. Every graph node whose metadata names a
``torch_module`` is compared with that module's output at every time step: spiking nodes (LIF, IF,
Threshold) must be identical, analog nodes (conv, pool sums) are reported as a maximum difference.
The per-step logits (graph output vs ``forward_steps``) must agree to float tolerance.

Precision. Float32 convolutions are not reproducible across batch shapes: oneDNN picks another
kernel for the model's merged ``T·B`` batch than for the executor's ``B`` per step, and about a
tenth of 1×1-conv outputs then differ by an ulp, which flips a spike whenever a membrane sits
within that ulp of threshold. ``precision="pinned"`` (the default) therefore runs the synapses of
*both* sides in float64 and the neurons in float32: each conv output is then the float32 rounding
of an (almost) order-independent sum, so the check tests the graph — structure, weights, neuron
mapping, thresholds, resets — not the BLAS library. ``precision="float32"`` runs both natively
and reports what is left: rare ulp-level flips, if any.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import nir
import torch
from torch import nn

from qkf_snn.errors import UserError
from qkf_snn.hardware.nir.fold import FoldReport, compare_folding, fold_batchnorm
from qkf_snn.hardware.nir.io import metadata
from qkf_snn.hardware.nir.nodes import SPIKING
from qkf_snn.hardware.nir.norse_exec import LifCell, topological_order
from qkf_snn.hardware.nir.readers import get_reader
from qkf_snn.models.neurons import MultiStepNeuron
from qkf_snn.models.qkformer import QKFormer
from qkf_snn.models.quant import QuantSpec, quantize_model

Precision = Literal["pinned", "float32"]
Batch = dict[str, torch.Tensor]


@dataclass
class NodeCheck:
    """One graph node against its PyTorch module, over all samples and steps."""

    name: str
    op: str  # NIR node type
    spiking: bool
    compared: int = 0  # values compared
    mismatches: int = 0  # spiking nodes: values that differ
    max_abs_diff: float = 0.0
    spikes: int = 0  # reference spikes (spiking nodes), to show the check is not vacuous
    per_step: dict[int, int] = field(default_factory=dict)  # step -> mismatches


@dataclass(frozen=True)
class Divergence:
    node: str
    step: int
    mismatches: int  # at this node and step, over all samples
    compared: int  # values at this node and step, over all samples


@dataclass
class VerifyReport:
    samples: int
    time_steps: int
    precision: str
    dt: float
    nodes: list[NodeCheck]  # topological order
    unmatched: list[str]  # graph nodes without a PyTorch counterpart (broadcasts, read-out, ...)
    logits_max_abs_diff: float
    logits_close: bool
    first_divergence: Divergence | None
    fold: FoldReport | None = None
    reader: str = "qkf"
    graph_nodes: int = 0
    load_error: str | None = None  # the reader could not load or run the graph: its error, one line
    quantization: str = "float32"  # the reference: float32, or e.g. "int8 per-channel" (quantize_model)

    @property
    def loaded(self) -> bool:
        return self.load_error is None

    @property
    def spike_mismatches(self) -> int:
        return sum(n.mismatches for n in self.nodes if n.spiking)

    @property
    def spikes_compared(self) -> int:
        return sum(n.compared for n in self.nodes if n.spiking)

    @property
    def passed(self) -> bool:
        return self.loaded and self.first_divergence is None and self.logits_close


def graph_quant_spec(meta: dict) -> QuantSpec | None:
    """The quantization a graph was exported with (its ``weight_bits`` metadata), or None (float)."""
    if "weight_bits" not in meta:
        return None
    return QuantSpec(int(meta["weight_bits"]), meta.get("quant_granularity", "per-channel") == "per-channel")


def _model_input(model: nn.Module, batch: Batch):
    return batch["x"] if isinstance(model, QKFormer) else batch


def _graph_inputs(graph: nir.NIRGraph, batch: Batch, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    inputs = {}
    for name, node in graph.inputs.items():
        key = metadata(node).get("batch_key", name.removeprefix("input_"))
        if key not in batch:
            raise UserError(f"graph input {name!r} needs batch key {key!r}; the data has {sorted(batch)}")
        want = tuple(int(s) for s in node.input_type["input"])
        x = batch[key]
        if tuple(x.shape[-len(want) :]) != want:
            raise UserError(
                f"data {key!r} has shape {tuple(x.shape)}, the graph input {name} wants {want} per step"
            )
        inputs[name] = x.to(dtype)
    return inputs


def _record_modules(model: nn.Module, paths: set[str]) -> tuple[dict[str, torch.Tensor], list]:
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    missing = sorted(paths - set(modules))
    if missing:
        raise UserError(
            f"the graph refers to module {missing[0]!r} (and {len(missing) - 1} more) that the model lacks: "
            "was the file exported from another checkpoint?"
        )
    hooks = [
        modules[p].register_forward_hook(lambda m, i, o, p=p: outputs.__setitem__(p, o.detach()))
        for p in paths
    ]
    return outputs, hooks


@torch.no_grad()
def verify_graph(
    graph: nir.NIRGraph,
    model: nn.Module,
    batches: Iterable[Batch],
    *,
    precision: Precision = "pinned",
    check_fold: bool = True,
    lif_cell: LifCell = "exact",
    reader: str = "qkf",
) -> VerifyReport:
    """Run ``graph`` in ``reader`` (see :data:`.readers.READERS`) and ``model`` (BN folded) on the
    same ``batches`` and compare.

    ``lif_cell="box"`` runs the qkf bridge's LIF nodes on Norse's stock ``LIFBoxCell`` instead of
    the exact cell, to measure what its different rounding costs; ``check_fold`` adds
    :func:`.fold.compare_folding`. A reader that fails to load or run the graph gives a report with
    ``load_error`` set (its exception, one line) and ``passed`` False."""
    if precision not in ("pinned", "float32"):
        raise UserError(f"precision must be 'pinned' or 'float32', got {precision!r}")
    batches = list(batches)
    meta = metadata(graph)
    if "dt" not in meta:
        raise UserError("the NIR graph records no dt: it was not written by `qkf export nir`")
    dt = float(meta["dt"])
    dtype = torch.float64 if precision == "pinned" else torch.float32
    model = original = model.eval()
    spec = graph_quant_spec(meta)
    if spec is not None and getattr(model, "quant_spec", None) != spec:
        model = quantize_model(model, spec)  # a quantized file is checked against the quantized model
    output_scale = float(meta.get("output_scale", 1.0))
    reference = fold_batchnorm(model).to(dtype)
    for neuron in reference.modules():  # neurons keep their float32 parameters (and arithmetic)
        if isinstance(neuron, MultiStepNeuron):
            neuron.float()
    order = topological_order(graph)
    options = {"lif_cell": lif_cell} if lif_cell != "exact" else {}
    try:
        runner = get_reader(reader).load(graph, dt, dtype, **options)
    except UserError:
        raise
    except Exception as err:  # the reader's own failure is the finding, not a crash of ours
        return _not_loaded(graph, reader, precision, dt, err)
    module_of = {n: metadata(graph.nodes[n]).get("torch_module") for n in order}
    analog_scale = _analog_scales(reference, module_of)
    checks = {
        n: NodeCheck(n, type(graph.nodes[n]).__name__, isinstance(graph.nodes[n], SPIKING))
        for n in order
        if module_of[n]
    }
    samples, steps, max_logit_diff, close = 0, 0, 0.0, True
    for batch in batches:
        inputs = _graph_inputs(graph, batch, dtype)
        outputs, hooks = _record_modules(reference, {m for m in module_of.values() if m})
        try:
            ref_logits = reference.forward_steps(
                _model_input(
                    reference, {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}
                )
            )
        finally:
            for h in hooks:
                h.remove()
        steps = ref_logits.shape[0]
        try:
            trace = runner.run(inputs, steps)
            got_logits = trace.outputs.reshape(ref_logits.shape) * output_scale
        except UserError:
            raise
        except Exception as err:
            return _not_loaded(graph, reader, precision, dt, err, loaded=True)
        samples += ref_logits.shape[1]
        diff = (got_logits - ref_logits).abs()
        max_logit_diff = max(max_logit_diff, float(diff.max()))
        close &= bool(torch.allclose(got_logits, ref_logits, rtol=1e-4, atol=1e-5))
        skipped = [n for n in checks if n not in trace.nodes]
        if skipped:  # e.g. Norse's executor, which runs only what one Input node reaches
            more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
            err = RuntimeError(f"the reader never ran graph node {skipped[0]}{more}")
            return _not_loaded(graph, reader, precision, dt, err, loaded=True)
        for name, check in checks.items():
            got = trace.nodes[name]
            ref = outputs[module_of[name]]
            if ref.numel() != got.numel():
                raise UserError(
                    f"graph node {name} has {got.numel()} values per batch, module {module_of[name]} "
                    f"{ref.numel()}: the file does not belong to this model"
                )
            ref = ref.reshape(got.shape)
            if name in analog_scale:  # a quantized conv's graph output is in units of its scale
                got = got * analog_scale[name].to(got.dtype).reshape(1, 1, -1, *([1] * (got.dim() - 3)))
            check.compared += got.numel()
            check.max_abs_diff = max(check.max_abs_diff, float((got - ref).abs().max()))
            if check.spiking:
                check.spikes += int(ref.sum())
                wrong = (got != ref).flatten(1).sum(1)  # per step
                check.mismatches += int(wrong.sum())
                for t in torch.nonzero(wrong).flatten().tolist():
                    check.per_step[t] = check.per_step.get(t, 0) + int(wrong[t])
    first = None
    for t in range(steps):
        for name in order:
            check = checks.get(name)
            if check is not None and check.per_step.get(t):
                first = Divergence(name, t, check.per_step[t], check.compared // max(steps, 1))
                break
        if first:
            break
    fold = None
    if check_fold:
        # BN folding of the float model (quantization's own effect is accuracy, not a fold question)
        fold = compare_folding(original, fold_batchnorm(original), [_model_input(model, b) for b in batches])
    return VerifyReport(
        samples=samples,
        time_steps=steps,
        precision=precision,
        dt=dt,
        nodes=list(checks.values()),
        unmatched=[
            n for n in order if not module_of[n] and not isinstance(graph.nodes[n], nir.Input | nir.Output)
        ],
        logits_max_abs_diff=max_logit_diff,
        logits_close=close,
        first_divergence=first,
        fold=fold,
        reader=reader,
        graph_nodes=len(graph.nodes),
        quantization=spec.describe() if spec is not None else "float32",
    )


def _analog_scales(model: nn.Module, module_of: dict[str, str | None]) -> dict[str, torch.Tensor]:
    """Graph node -> per-channel weight scale, for the convs of a quantized model (whose graph nodes
    hold ``Q·x + B`` where the model computes ``s·(Q·x + B)``)."""
    modules = dict(model.named_modules())
    out = {}
    for name, path in module_of.items():
        if path and path.endswith(".conv"):
            scale = getattr(modules.get(path.rsplit(".", 1)[0]), "weight_scale", None)
            if scale is not None:
                out[name] = scale
    return out


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _not_loaded(
    graph: nir.NIRGraph, reader: str, precision: str, dt: float, err: BaseException, loaded: bool = False
) -> VerifyReport:
    return VerifyReport(
        samples=0,
        time_steps=0,
        precision=precision,
        dt=dt,
        nodes=[],
        unmatched=[],
        logits_max_abs_diff=float("nan"),
        logits_close=False,
        first_divergence=None,
        reader=reader,
        graph_nodes=len(graph.nodes),
        load_error=("runs: " if loaded else "loads: ") + _one_line(err),
    )


def collate(items: list[dict]) -> Batch:
    """Stack dataset items (dicts of tensors / ints) into a batch dict of tensors."""
    keys = [k for k, v in items[0].items() if isinstance(v, torch.Tensor)]
    return {k: torch.stack([it[k] for it in items]) for k in keys}
