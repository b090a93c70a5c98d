"""Counting rules: one small function per module class, looked up by the class's MRO.

A rule sees one call of a module (its positional inputs and its output) and returns :class:`CallStats`:
a few tensor reductions, no Python loops over elements and no host synchronisation, so profiling a
split stays close to the cost of plain inference. The profiler adds the stats up per layer.

Vocabulary (see docs/energy.md):
- *fan-out* of an input element: the number of (output position, filter) pairs it reaches, with the
  layer's real borders, stride, dilation and groups (a corner pixel of a padded 3×3 conv reaches 4
  positions, not 9).
- *value events*: Σ |x| · fan-out. For spikes this is the synaptic-event count; for the integer
  residual stream an entry of value 2 counts as two spikes.
- *nonzero events*: Σ 1[x ≠ 0] · fan-out (NeuroBench's "effective" operations).
- *valid connections*: the same count for an all-ones input (the ANN twin's MACs without padding).
- *dense MACs*: positions × fan-in, padding included (the paper FLOPs).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

from qkf_snn.models.blocks.ops import MatMul, Mul, Sum
from qkf_snn.models.neurons import MultiStepNeuron


@dataclass
class CallStats:
    """What one call contributes. ``add`` values are summed over calls, ``low``/``high`` take the
    minimum/maximum, ``rows`` are vectors over the call's leading dimension (split into time
    steps once the batch is complete), ``samples`` are vectors with one entry per *sample row*
    (row r belongs to sample r mod B; see ``sample_view``), ``info`` is static description (kept
    from the first call). Tensor values stay on the device; the profiler reads them all at once at
    the end of a batch."""

    add: dict[str, Any] = field(default_factory=dict)
    low: dict[str, torch.Tensor] = field(default_factory=dict)
    high: dict[str, torch.Tensor] = field(default_factory=dict)
    rows: dict[str, torch.Tensor] = field(default_factory=dict)
    samples: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    # Host-side arithmetic once read back (the other tools' per-sample buckets): this call's
    # scalars, and its ``samples`` vectors split by sample (``by_sample``). Kept off the device so
    # that a hooked call issues only a handful of reductions.
    post: Callable[[dict[str, float], dict[str, list[list[float]]]], dict[str, float]] | None = None


Rule = Callable[[nn.Module, tuple, Any], CallStats]


@dataclass(frozen=True)
class Counter:
    """How a module class is counted: ``kind`` is one of ``synapse`` (conv/linear), ``product``
    (attention products), ``neuron``, ``norm`` (BN: foldable, 0 ops), ``pool``, ``passthrough``.
    ``describe(module)`` gives static facts about a layer, read once per profile."""

    kind: str
    rule: Rule | None
    describe: Callable[[nn.Module], dict[str, Any]] | None = None


COUNTERS: dict[type, Counter] = {}


def register_counter(
    cls: type,
    kind: str,
    rule: Rule | None = None,
    describe: Callable[[nn.Module], dict[str, Any]] | None = None,
) -> None:
    """Count modules of ``cls`` (and subclasses) with ``rule``; later registrations win."""
    COUNTERS[cls] = Counter(kind, rule, describe)


def find_counter(module: nn.Module) -> Counter | None:
    """The rule of the closest registered class in the module's MRO, or None."""
    for cls in type(module).__mro__:
        if cls in COUNTERS:
            return COUNTERS[cls]
    return None


# --- helpers --------------------------------------------------------------------------------------
# Only float element-wise ops and float reductions here: on CPU, boolean masks and count_nonzero
# cost 10-30× more than a float pass over the same tensor.

# Float32 sums of integers are exact while every partial sum stays below 2^24. Sums over more than
# 2^24 / 16 terms (room for integer values up to 16, fan-outs counted separately) use float64.
_F32_TERMS = 2**24 // 16


def total(x: torch.Tensor) -> torch.Tensor:
    """Σ x, exact for integer-valued tensors (float64 accumulation where float32 could round)."""
    return x.sum(dtype=torch.float64) if x.numel() >= _F32_TERMS else x.sum()


def row_totals(x: torch.Tensor) -> torch.Tensor:
    """Σ over everything but dimension 0: a vector with one entry per leading index."""
    x = x.reshape(x.shape[0], -1) if x.dim() else x.reshape(1, 1)
    return x.sum(1, dtype=torch.float64) if x.shape[1] >= _F32_TERMS else x.sum(1)


def sample_view(x: torch.Tensor, batch_dims: int) -> torch.Tensor:
    """``x`` as ``[rows, -1]``, one row per index of its first ``batch_dims`` dimensions (merged
    T·B or B for conv inputs, [T, B] or [B] for token tensors): row r belongs to sample r mod B in
    time-major and batch-first layouts alike."""
    batch_dims = max(0, min(batch_dims, x.dim()))
    return x.reshape(math.prod(x.shape[:batch_dims]), -1)


def value_stats(x: torch.Tensor, prefix: str, stats: CallStats) -> tuple[torch.Tensor, torch.Tensor]:
    """Of one operand given as sample rows ``[rows, -1]`` (``sample_view``): range and integrality
    per row (``samples``: what the other tools test, per sample), |x| per row (``rows``), Σ|x| and
    the non-zero count. Returns (|x|, 1[x≠0]) for rules that need more. Eight float passes."""
    frac = torch.frac(x)
    # amin/amax along a dim: on CPU, aminmax(dim=...) is an order of magnitude slower
    low, high, frac_low, frac_high = x.amin(1), x.amax(1), frac.amin(1), frac.amax(1)
    magnitude = x.abs()
    indicator = torch.sign(magnitude)  # exactly 1 where x ≠ 0
    abs_rows = row_totals(magnitude)
    stats.low[f"{prefix}min"], stats.high[f"{prefix}max"] = low.min(), high.max()
    for key, vec in (("min", low), ("max", high), ("frac_low", frac_low), ("frac_high", frac_high)):
        stats.samples[f"{prefix}{key}"] = vec
    stats.add[f"{prefix}elems"] = x.numel()
    stats.add[f"{prefix}abs_sum"] = total(abs_rows)
    stats.add[f"{prefix}nonzero"] = total(indicator)
    stats.rows[f"{prefix}abs"] = abs_rows
    return magnitude, indicator


def by_sample(vec: list[float], samples: int) -> list[list[float]]:
    """A sample-row vector split by sample (row r -> sample r mod B). Rows that do not divide by
    the batch size have no known layout: the call is one group, as the tools see a whole call."""
    if samples > 0 and len(vec) % samples == 0:
        return [vec[b::samples] for b in range(samples)]
    return [vec]


def spike_flags(groups: dict[str, list[list[float]]], prefix: str) -> list[tuple[bool, bool]]:
    """Per sample, (binary, ternary): every value in {0,1} (SpikingJelly's spike test) / in
    {-1,0,1} (NeuroBench's), as those tools decide for a call holding that one sample."""
    out = []
    for low, high, flow, fhigh in zip(
        *(groups[f"{prefix}{k}"] for k in ("min", "max", "frac_low", "frac_high")), strict=True
    ):
        integer = min(flow) == 0 and max(fhigh) == 0
        lo, hi = min(low), max(high)
        out.append((integer and lo >= 0 and hi <= 1, integer and lo >= -1 and hi <= 1))
    return out


# --- synaptic layers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvGeometry:
    """The parts of a convolution that decide fan-out (weights do not matter)."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Any  # tuple of ints, or "same" / "valid"
    dilation: tuple[int, ...]
    padding_mode: str
    pad: tuple[int, ...]  # explicit F.pad widths for non-zero padding modes

    @classmethod
    def of(cls, conv: nn.Module) -> ConvGeometry:
        return cls(
            tuple(conv.kernel_size),
            tuple(conv.stride),
            conv.padding if isinstance(conv.padding, str) else tuple(conv.padding),
            tuple(conv.dilation),
            conv.padding_mode,
            tuple(conv._reversed_padding_repeated_twice),
        )

    @property
    def pointwise(self) -> bool:
        """1×1, stride 1, no padding: every input reaches exactly one position per filter."""
        no_pad = self.padding == "valid" or self.padding == (0,) * len(self.kernel)
        return all(k == 1 for k in self.kernel) and all(s == 1 for s in self.stride) and no_pad


def box_sum(geo: ConvGeometry, x: torch.Tensor) -> torch.Tensor:
    """Per output position, the sum of ``x [N, 1, *S]`` over its receptive field (a convolution
    with an all-ones kernel, borders and stride as in the layer)."""
    padding = geo.padding
    if geo.padding_mode != "zeros":  # replicated/reflected borders are real reads: count them
        x = F.pad(x, geo.pad, mode=geo.padding_mode)
        padding = 0
    conv = (F.conv1d, F.conv2d, F.conv3d)[len(geo.kernel) - 1]
    ones = torch.ones(1, 1, *geo.kernel, dtype=x.dtype, device=x.device)
    return conv(x, ones, None, geo.stride, padding, geo.dilation)


@functools.lru_cache(maxsize=256)
def _fanout_map(geo: ConvGeometry, spatial: tuple[int, ...]) -> torch.Tensor:
    """F[p] = number of output positions whose receptive field reads input position p (the exact,
    border- and stride-aware fan-out per filter), as a flat float64 CPU vector. Shape-only."""
    probe = torch.ones(1, 1, *spatial, dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        box_sum(geo, probe).sum().backward()
    return probe.grad.reshape(-1)


def fanout_map(
    geo: ConvGeometry, spatial: tuple[int, ...], channels: int, like: torch.Tensor
) -> torch.Tensor:
    """The fan-out map repeated over ``channels``, on ``like``'s device and dtype."""
    return _fanout_map_on(geo, spatial, channels, like.dtype, like.device)


@functools.lru_cache(maxsize=256)
def _fanout_map_on(geo, spatial, channels, dtype, device) -> torch.Tensor:
    return _fanout_map(geo, spatial).to(dtype=dtype, device=device).repeat(channels)


def conv_valid_connections(conv: nn.Module, spatial: tuple[int, ...]) -> int:
    """Valid (input, weight) pairs of one row: the ANN twin's MACs without padded positions."""
    taps = int(_fanout_map(ConvGeometry.of(conv), spatial).sum())
    return taps * conv.in_channels * (conv.out_channels // conv.groups)


def synapse_tool_counts(values: dict[str, float], groups: dict[str, list[list[float]]]) -> dict[str, float]:
    """Buckets of NeuroBench (AC if the input is in {-1,0,1}, else MAC) and SpikingJelly (synaptic
    ops only for {0,1} input). The tools decide per call, so per batch; we decide per sample, as
    they would with one sample per call: a clip's numbers do not depend on its batch-mates."""
    out = {"neurobench_ac": 0.0, "neurobench_mac": 0.0, "spikingjelly_synops": 0.0}
    for (binary, ternary), events in zip(spike_flags(groups, "in_"), groups["events_nonzero"], strict=True):
        events = sum(events)  # integers: exact in any order
        out["neurobench_ac" if ternary else "neurobench_mac"] += events
        out["spikingjelly_synops"] += events if binary else 0.0
    return out


def conv_rule(module: nn.Module, inputs: tuple, output: torch.Tensor) -> CallStats:
    """Conv1d/2d/3d: exact border-aware fan-out, value- and nonzero-weighted."""
    x = inputs[0].detach()
    if x.dim() == len(module.kernel_size) + 1:  # unbatched input
        x = x.unsqueeze(0)
    rows, spatial = x.shape[0], tuple(x.shape[2:])
    filters = module.out_channels // module.groups
    geo = ConvGeometry.of(module)
    stats = CallStats()
    flat_mag, flat_ind = value_stats(sample_view(x, 1), "in_", stats)  # rows: T·B merged, or B
    abs_rows = stats.rows.pop("in_abs")
    if geo.pointwise:
        value_rows = abs_rows * filters
        nz_rows = row_totals(flat_ind) * filters
    else:
        if flat_mag.shape[1] * math.prod(geo.kernel) >= _F32_TERMS:  # keep the dot products exact
            flat_mag, flat_ind = flat_mag.double(), flat_ind.double()
        fan = fanout_map(geo, spatial, x.shape[1], flat_mag)
        value_rows = (flat_mag @ fan) * filters
        nz_rows = (flat_ind @ fan) * filters
    stats.rows["events_value"] = value_rows
    stats.samples["events_nonzero"] = nz_rows
    stats.add["events_value"] = total(value_rows)
    stats.add["events_nonzero"] = total(nz_rows)
    fan_in = module.weight[0].numel()
    stats.add["dense_macs"] = output.numel() * fan_in
    stats.add["valid_connections"] = conv_valid_connections(module, spatial) * rows
    stats.post = synapse_tool_counts
    stats.add["out_elems"] = output.numel()
    stats.info.update(
        op="conv",
        kernel=list(module.kernel_size),
        stride=list(module.stride),
        groups=module.groups,
        fan_in=fan_in,
        out_channels=module.out_channels,
        weights=module.weight.numel(),
        bias=module.bias is not None,
    )
    return stats


def linear_rule(module: nn.Module, inputs: tuple, output: torch.Tensor) -> CallStats:
    """Linear: every non-zero input reaches all ``out_features`` outputs."""
    x = inputs[0].detach()
    rows, out = x.numel() // module.in_features, module.out_features
    stats = CallStats()
    # [B, in], [T, B, in], [T, B, N, in]: one sample row per index of the leading (T, B) dims.
    _, indicator = value_stats(sample_view(x, min(2, x.dim() - 1)), "in_", stats)
    value_rows = stats.rows.pop("in_abs") * out
    stats.rows["events_value"] = value_rows
    stats.samples["events_nonzero"] = row_totals(indicator) * out
    stats.add["events_value"] = total(value_rows)
    stats.add["events_nonzero"] = stats.add["in_nonzero"] * out
    stats.add["dense_macs"] = rows * module.in_features * out
    stats.add["valid_connections"] = rows * module.in_features * out
    stats.post = synapse_tool_counts
    stats.add["out_elems"] = output.numel()
    stats.info.update(
        op="linear",
        kernel=[],
        stride=[],
        groups=1,
        fan_in=module.in_features,
        out_channels=out,
        weights=module.weight.numel(),
        bias=module.bias is not None,
    )
    return stats


# --- attention products ---------------------------------------------------------------------------


def mul_rule(module: nn.Module, inputs: tuple, output: torch.Tensor) -> CallStats:
    """Elementwise product (mask ⊙ K). Each non-zero product is a coincidence of the two operands
    (an AND for spikes); integer operands count by value, Σ |a·b|."""
    a, b = (t.detach() for t in inputs[:2])
    magnitude = output.detach().abs()
    stats = CallStats()
    value_stats(sample_view(a, 1), "a_", stats)
    value_stats(sample_view(b, 1), "b_", stats)
    del stats.rows["a_abs"], stats.rows["b_abs"]  # operand rows are not per-step quantities here
    value_rows = row_totals(magnitude)
    stats.rows["events_value"] = value_rows
    stats.add["events_value"] = total(value_rows)
    stats.add["events_nonzero"] = total(torch.sign(magnitude))
    stats.add["dense_ops"] = magnitude.numel()
    stats.add["spikingjelly_synops"] = 0  # aten.mul has no SynOpCounter rule
    stats.info.update(op="mul")
    return stats


def matmul_rule(module: nn.Module, inputs: tuple, output: torch.Tensor) -> CallStats:
    """Batched ``a @ b``: value coincidences Σ_ikj |a_ik|·|b_kj| = Σ_k colsum|a|_k · rowsum|b|_k,
    without forming the products. SpikingJelly's bmm rule is reproduced per sample for comparison."""
    a, b = (t.detach() for t in inputs[:2])
    n, k, m = a.shape[-2], a.shape[-1], b.shape[-1]
    # Sample rows over the leading (T, B) batch dims; broadcast operands: one group per call.
    lead = min(2, a.dim() - 2) if a.shape[:-2] == b.shape[:-2] else 0
    stats = CallStats()
    abs_a, ind_a = (t.reshape(a.shape) for t in value_stats(sample_view(a, lead), "a_", stats))
    abs_b, ind_b = (t.reshape(b.shape) for t in value_stats(sample_view(b, lead), "b_", stats))
    del stats.rows["a_abs"], stats.rows["b_abs"]
    f64 = torch.float64  # products of column and row sums can exceed float32's exact integers
    coincide = abs_a.sum(-2, dtype=f64) * abs_b.sum(-1, dtype=f64)  # [..., k], broadcast batch dims
    nonzero = ind_a.sum(-2, dtype=f64) * ind_b.sum(-1, dtype=f64)
    stats.samples["events_value"] = row_totals(sample_view(coincide, lead))
    stats.samples["a_nonzero"] = row_totals(sample_view(ind_a, lead))
    stats.samples["b_nonzero"] = row_totals(sample_view(ind_b, lead))
    value_rows = row_totals(coincide)
    stats.rows["events_value"] = value_rows
    stats.add["events_value"] = total(value_rows)
    stats.add["events_nonzero"] = total(nonzero)
    stats.add["dense_ops"] = output.numel() * k
    # SpikingJelly (op_counter/ac.py _spike_bmm): both binary -> out.sum(); one binary -> its
    # non-zeros times the other operand's free dimension (broadcast batch dims repeat it); else 0.
    batch = output.numel() // max(n * m, 1)
    rep_a = batch // max(a.numel() // max(n * k, 1), 1)
    rep_b = batch // max(b.numel() // max(k * m, 1), 1)

    def spikingjelly(values: dict[str, float], groups: dict[str, list[list[float]]]) -> dict[str, float]:
        synops = 0.0
        flags = zip(spike_flags(groups, "a_"), spike_flags(groups, "b_"), strict=True)
        for i, ((bin_a, _), (bin_b, _)) in enumerate(flags):  # per sample, as with one per call
            if bin_a and bin_b:
                synops += sum(groups["events_value"][i])
            elif bin_a:
                synops += sum(groups["a_nonzero"][i]) * rep_a * m
            elif bin_b:
                synops += sum(groups["b_nonzero"][i]) * rep_b * n
        return {"spikingjelly_synops": synops}

    stats.post = spikingjelly
    stats.info.update(op="matmul", n=n, k=k, m=m)
    return stats


def sum_rule(module: nn.Module, inputs: tuple, output: torch.Tensor) -> CallStats:
    """Reduction (Q summed over a head's channels or over tokens): each non-zero addend is one
    accumulation, integer addends count by value."""
    x = inputs[0].detach()
    stats = CallStats()
    value_stats(sample_view(x, 1), "a_", stats)
    value_rows = stats.rows.pop("a_abs")
    stats.rows["events_value"] = value_rows
    stats.add["events_value"] = total(value_rows)
    stats.add["events_nonzero"] = stats.add["a_nonzero"]
    stats.add["dense_ops"] = x.numel()
    stats.add["spikingjelly_synops"] = 0  # aten.sum has no SynOpCounter rule
    stats.info.update(op="sum")
    return stats


# --- neurons, normalisation, pooling --------------------------------------------------------------


def _neuron_stats(x: torch.Tensor, spikes: torch.Tensor, stats: CallStats) -> None:
    rows = row_totals(spikes)  # per step (multi-step) or per sample (single-step)
    stats.rows["spikes"] = rows
    stats.add["spikes"] = total(rows)
    stats.add["updates"] = spikes.numel()  # clock-driven: every neuron updates every step
    stats.add["active_updates"] = total(torch.sign(x).abs_())  # updates with a non-zero input
    low, high = torch.aminmax(spikes)
    stats.low["out_min"], stats.high["out_max"] = low, high


def multistep_neuron_rule(module: nn.Module, inputs: tuple, output: torch.Tensor) -> CallStats:
    """Our multi-step neurons: input and spikes ``[T, B, ...]``."""
    stats = CallStats()
    _neuron_stats(inputs[0].detach(), output.detach(), stats)
    stats.info["multistep"] = True
    return stats


def singlestep_neuron_rule(module: nn.Module, inputs: tuple, output: Any) -> CallStats:
    """Plain snnTorch neurons called once per time step with ``[B, ...]``; output ``spk`` or
    ``(spk, mem)``."""
    spikes = output[0] if isinstance(output, tuple) else output
    stats = CallStats()
    _neuron_stats(inputs[0].detach(), spikes.detach(), stats)
    stats.info["multistep"] = False
    return stats


def describe_neuron(module: nn.Module) -> dict[str, Any]:
    """Kind, β (leak), threshold and reset of a neuron layer (read once per profile)."""
    beta = getattr(module, "beta", None)
    beta_value = float(beta.detach().float().mean()) if isinstance(beta, torch.Tensor) else beta
    threshold = getattr(module, "nominal_threshold", None)
    if threshold is None and isinstance(getattr(module, "threshold", None), torch.Tensor):
        threshold = float(module.threshold.detach().float().mean())
    return {
        "neuron": getattr(module, "kind", type(module).__name__),
        "beta": beta_value,
        "leak": beta_value is not None and beta_value != 1.0,
        "threshold": threshold,
        "reset": getattr(module, "reset_name", None),
    }


def norm_rule(module: nn.Module, inputs: tuple, output: torch.Tensor) -> CallStats:
    """BatchNorm at inference is an affine map foldable into the preceding conv: 0 operations."""
    stats = CallStats()
    stats.add["elems"] = output.numel()
    stats.info.update(op="batchnorm", note="folded into the preceding conv at inference: 0 ops")
    return stats


def pool_rule(module: nn.Module, inputs: tuple, output: torch.Tensor) -> CallStats:
    """Max-pooling: (window - 1) comparisons per output. On spikes it is an OR over the window
    (event hardware can do it); on analog values (BN outputs) it is not event-driven."""
    x = inputs[0].detach()
    kernel = (
        module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * (x.dim() - 2)
    )
    stats = CallStats()
    stats.add["comparisons"] = output.numel() * (math.prod(kernel) - 1)
    stats.add["elems"] = output.numel()
    stats.info.update(op="maxpool", kernel=list(kernel))
    return stats


for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    register_counter(_cls, "synapse", conv_rule)
register_counter(nn.Linear, "synapse", linear_rule)
register_counter(Mul, "product", mul_rule)
register_counter(MatMul, "product", matmul_rule)
register_counter(Sum, "product", sum_rule)
register_counter(MultiStepNeuron, "neuron", multistep_neuron_rule, describe_neuron)
register_counter(snn.SpikingNeuron, "neuron", singlestep_neuron_rule, describe_neuron)
register_counter(nn.modules.batchnorm._BatchNorm, "norm", norm_rule)
for _cls in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d):
    register_counter(_cls, "pool", pool_rule)
for _cls in (nn.Identity, nn.Dropout, nn.Flatten, nn.Unflatten):
    register_counter(_cls, "passthrough", None)
