"""Energy-aware training: the profiler's energy models as a differentiable per-sample estimate.

One counting rule, one pricing rule. :class:`EnergyEstimator` profiles one batch with the
:class:`~qkf_snn.hardware.profile.profiler.Profiler` to learn the model's structure (each layer's
record: role and input kinds from the kind tracer, time steps, kernel, ...), then hooks the same
modules and, on every forward, recomputes the data-dependent fields of those records as tensors that
carry gradients: synaptic events Σ |x|·fan-out from the profiler's own fan-out maps, spikes, input
rates, coincidences of attention products. The records go to the profiler's energy model functions
(``ENERGY_MODELS``) unchanged, so training prices exactly what ``qkf profile`` prices; the
differentiable twin of each counting rule is an entry of :data:`TWINS`, keyed by that rule, and a
test checks every twin against its rule on every field the energy models read.

Gradients: |x| is computed as x·s with s = -1 where x < 0 and +1 elsewhere (detached), which is
exactly |x| and has gradient +1 at 0, so a silent neuron is told what firing would cost (torch's
abs has gradient 0 there). Non-zero indicators carry the same gradient (their value is exact). Spikes
reach the weights through the neurons' surrogate gradients.

Training uses it through the loss term of ``hardware/profile/term.py``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from qkf_snn.errors import UserError
from qkf_snn.hardware.profile import counters as C
from qkf_snn.hardware.profile.conventions import CountOptions
from qkf_snn.hardware.profile.energy import ENERGY_MODELS
from qkf_snn.hardware.profile.profiler import Forward, Profiler
from qkf_snn.hardware.profile.records import NeuronRecord, ProductRecord, Profile, SynapseRecord


def check_energy_model(name: str, option: str = "energy.model") -> str:
    """``name`` if it is one of the profiler's energy models, else one line naming the choices."""
    if name not in ENERGY_MODELS:
        raise UserError(f"{option} {name!r}: unknown energy model; choose one of {', '.join(ENERGY_MODELS)}")
    return name


# --- differentiable twins of the counting rules ---------------------------------------------------------

Sums = dict[str, Any]  # per call: tensors (data-dependent, differentiable) and ints (shapes)


def magnitude(x: torch.Tensor) -> torch.Tensor:
    """|x| in value, with gradient sign(x) and +1 at 0 (see the module doc). Float32 at least."""
    x = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return x * torch.where(x < 0, -1.0, 1.0).to(x.dtype).detach()


def indicator(mag: torch.Tensor) -> torch.Tensor:
    """1[x ≠ 0] in value, with the gradient of ``mag``."""
    return mag + (torch.sign(mag) - mag).detach()


def _operand(prefix: str, mag: torch.Tensor, ind: torch.Tensor, out: Sums) -> None:
    out[f"{prefix}elems"] = mag.numel()
    out[f"{prefix}abs_sum"] = mag.sum()
    out[f"{prefix}nonzero"] = ind.sum()


def conv_sums(module: nn.Module, inputs: tuple, output: torch.Tensor) -> Sums:
    """Twin of ``counters.conv_rule``: events through the same border-aware fan-out map."""
    x = inputs[0]
    if x.dim() == len(module.kernel_size) + 1:
        x = x.unsqueeze(0)
    rows, spatial = x.shape[0], tuple(x.shape[2:])
    filters = module.out_channels // module.groups
    geo = C.ConvGeometry.of(module)
    mag = magnitude(x).reshape(rows, -1)
    ind = indicator(mag)
    out: Sums = {}
    _operand("in_", mag, ind, out)
    if geo.pointwise:
        value, nonzero = out["in_abs_sum"] * filters, out["in_nonzero"] * filters
    else:
        fan = C.fanout_map(geo, spatial, x.shape[1], mag)
        value, nonzero = (mag @ fan).sum() * filters, (ind @ fan).sum() * filters
    out.update(
        events_value=value,
        events_nonzero=nonzero,
        dense_macs=output.numel() * module.weight[0].numel(),
        valid_connections=C.conv_valid_connections(module, spatial) * rows,
        out_elems=output.numel(),
    )
    return out


def linear_sums(module: nn.Module, inputs: tuple, output: torch.Tensor) -> Sums:
    """Twin of ``counters.linear_rule``: every input reaches ``out_features`` outputs."""
    x = inputs[0]
    rows, n = x.numel() // module.in_features, module.out_features
    mag = magnitude(x)
    out: Sums = {}
    _operand("in_", mag, indicator(mag), out)
    out.update(events_value=out["in_abs_sum"] * n, events_nonzero=out["in_nonzero"] * n,
               dense_macs=rows * module.in_features * n, valid_connections=rows * module.in_features * n,
               out_elems=output.numel())  # fmt: skip
    return out


def mul_sums(module: nn.Module, inputs: tuple, output: torch.Tensor) -> Sums:
    """Twin of ``counters.mul_rule``: Σ |a·b| coincidences."""
    ma, mb = magnitude(inputs[0]), magnitude(inputs[1])
    out: Sums = {}
    _operand("a_", ma, indicator(ma), out)
    _operand("b_", mb, indicator(mb), out)
    product = ma * mb
    out.update(events_value=product.sum(), events_nonzero=indicator(product).sum(), dense_ops=output.numel())
    return out


def matmul_sums(module: nn.Module, inputs: tuple, output: torch.Tensor) -> Sums:
    """Twin of ``counters.matmul_rule``: Σ_k colsum|a|_k · rowsum|b|_k, in float64 as there."""
    ma, mb = magnitude(inputs[0]), magnitude(inputs[1])
    ia, ib = indicator(ma), indicator(mb)
    out: Sums = {}
    _operand("a_", ma, ia, out)
    _operand("b_", mb, ib, out)
    f64 = torch.float64
    out.update(
        events_value=(ma.sum(-2, dtype=f64) * mb.sum(-1, dtype=f64)).sum(),
        events_nonzero=(ia.sum(-2, dtype=f64) * ib.sum(-1, dtype=f64)).sum(),
        dense_ops=output.numel() * ma.shape[-1],
    )
    return out


def sum_sums(module: nn.Module, inputs: tuple, output: torch.Tensor) -> Sums:
    """Twin of ``counters.sum_rule``: one accumulation per unit of |addend|."""
    mag = magnitude(inputs[0])
    out: Sums = {}
    _operand("a_", mag, indicator(mag), out)
    out.update(events_value=out["a_abs_sum"], events_nonzero=out["a_nonzero"], dense_ops=mag.numel())
    return out


def neuron_sums(module: nn.Module, inputs: tuple, output: Any) -> Sums:
    """Twin of the neuron rules: spikes (differentiable through the surrogate), updates, active
    updates (a non-zero input current; counted, not differentiated)."""
    spikes = output[0] if isinstance(output, tuple) else output
    return {
        "spikes": spikes.float().sum(),
        "updates": spikes.numel(),
        "active_updates": torch.sign(inputs[0].detach().float()).abs().sum(),
    }


# The profiler's counting rule -> its differentiable twin. A counted synapse, product or neuron whose
# rule has no twin cannot be estimated: the estimator says so instead of counting it as zero.
TWINS: dict[Callable, Callable[[nn.Module, tuple, Any], Sums]] = {
    C.conv_rule: conv_sums,
    C.linear_rule: linear_sums,
    C.mul_rule: mul_sums,
    C.matmul_rule: matmul_sums,
    C.sum_rule: sum_sums,
    C.multistep_neuron_rule: neuron_sums,
    C.singlestep_neuron_rule: neuron_sums,
}
PRICED_KINDS = ("synapse", "product", "neuron")  # counter kinds the energy models price


# --- records from sums ------------------------------------------------------------------------------------


def _synapse(rec: SynapseRecord, s: Sums, n: int) -> SynapseRecord:
    steps, elems = max(rec.time_steps, 1), s["in_elems"]
    return dataclasses.replace(
        rec,
        inputs_per_step=elems / n / steps,
        outputs_per_step=s["out_elems"] / n / steps,
        dense_macs=s["dense_macs"] / n,
        valid_connections=s["valid_connections"] / n,
        input_nonzero_share=s["in_nonzero"] / elems,
        input_mean=s["in_abs_sum"] / elems,
        events_value=s["events_value"] / n,
        events_nonzero=s["events_nonzero"] / n,
    )


def _product(rec: ProductRecord, s: Sums, n: int) -> ProductRecord:
    operands = [
        dataclasses.replace(
            op, nonzero_share=s[f"{p}nonzero"] / s[f"{p}elems"], mean=s[f"{p}abs_sum"] / s[f"{p}elems"]
        )
        for op, p in zip(rec.operands, ("a_", "b_"), strict=False)
    ]
    return dataclasses.replace(
        rec,
        operands=operands,
        dense_ops=s["dense_ops"] / n,
        events_value=s["events_value"] / n,
        events_nonzero=s["events_nonzero"] / n,
    )


def _neuron(rec: NeuronRecord, s: Sums, n: int) -> NeuronRecord:
    steps = max(rec.time_steps, 1)
    return dataclasses.replace(
        rec,
        neurons=s["updates"] / n / steps,
        spikes=s["spikes"] / n,
        membrane_updates=s["updates"] / n,
        active_updates=s["active_updates"] / n,
    )


# The fields each record kind gets from the sums (the rest are structure, from the calibration batch).
ESTIMATED_FIELDS: dict[str, tuple[str, ...]] = {
    "synapse": ("inputs_per_step", "outputs_per_step", "dense_macs", "valid_connections",
                "input_nonzero_share", "input_mean", "events_value", "events_nonzero"),
    "product": ("operands", "dense_ops", "events_value", "events_nonzero"),
    "neuron": ("neurons", "spikes", "membrane_updates", "active_updates"),
}  # fmt: skip
_BUILD = {"synapse": _synapse, "product": _product, "neuron": _neuron}


def _device_type(inputs: tuple) -> str:
    first = next((t for t in inputs if isinstance(t, torch.Tensor)), None)
    return "cpu" if first is None else first.device.type


class EnergyEstimator:
    """Differentiable per-sample energy of ``model`` under one of the profiler's energy models.

        est = EnergyEstimator(model, "h45_fp32_paper")
        est.calibrate(batch)          # one profiled batch: the structure (eval mode, no_grad)
        with est:                     # hooks on
            out = model(batch)
            energy = est.energy()     # pJ per sample of that batch, a tensor with gradients

    Every hooked call since the last :meth:`energy` (or :meth:`clear`) is part of one batch. Between
    :meth:`begin_split` and :meth:`end_split` the calls are added, detached, to split totals instead;
    :meth:`split_energy` prices them as ``qkf profile`` prices the same batches (same records, same
    energy function). The number of samples is read from the structure: the first layer's per-sample
    size (dense MACs, updates or operations) divides its summed size, so no batch is needed.
    """

    def __init__(
        self,
        model: nn.Module,
        energy_model: str,
        *,
        options: CountOptions | None = None,
        forward: Forward | None = None,
    ) -> None:
        self.model = model
        self.energy_model = check_energy_model(energy_model)
        self.price = ENERGY_MODELS[energy_model]
        self.options = options or CountOptions()
        self.forward = forward or (lambda m, b: m(b))
        self.names = {m: (n or "model") for n, m in model.named_modules()}
        self.structure: dict[str, Any] | None = None  # layer name -> calibration record
        self.kinds: dict[str, str] = {}  # layer name -> counter kind
        self.time_steps = 0
        self._pending: dict[nn.Module, Sums] = {}
        self._split: dict[nn.Module, Sums] = {}
        self._split_batches = 0
        self._mode = "batch"  # batch | split | off
        self._handles: list = []

    # --- structure ---------------------------------------------------------------------------------
    def calibrate(self, batch: Any) -> Profile:
        """Profile one batch (eval mode, no_grad; the model's mode is restored) for the structure."""
        was_training, mode = self.model.training, self._mode
        self.model.eval()
        self._mode = "off"  # our own hooks stay out of the calibration batch
        try:
            with Profiler(self.model) as prof:
                prof.run(batch, forward=self.forward)
            profile = prof.result()
        finally:
            self.model.train(was_training)
            self._mode = mode
        self.structure = {}
        for kind, records in (("synapse", profile.synapses), ("product", profile.products),
                              ("neuron", profile.neurons)):  # fmt: skip
            for rec in records:
                self.structure[rec.name] = rec
                self.kinds[rec.name] = kind
        self.time_steps = profile.time_steps
        return profile

    @property
    def calibrated(self) -> bool:
        return self.structure is not None

    # --- hooks -------------------------------------------------------------------------------------
    def __enter__(self) -> EnergyEstimator:
        self.attach()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    def attach(self) -> None:
        """Hook every priced module (idempotent)."""
        if self._handles:
            return
        missing = []
        for module in self.model.modules():
            counter = C.find_counter(module)
            if counter is None or counter.rule is None or counter.kind not in PRICED_KINDS:
                continue
            twin = TWINS.get(counter.rule)
            if twin is None:
                missing.append(f"{self.names[module]} ({type(module).__name__})")
                continue
            self._handles.append(module.register_forward_hook(self._hook(twin)))
        if missing:
            self.detach()
            raise UserError(
                "energy estimate: no differentiable twin of the counting rule of " + ", ".join(missing[:4])
                + " (add one to hardware/profile/estimator.py TWINS)"
            )  # fmt: skip

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._pending.clear()

    def _hook(self, twin: Callable[[nn.Module, tuple, Any], Sums]):
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            if self._mode == "off":
                return
            with torch.autocast(_device_type(inputs), enabled=False):  # counts in float32, not bf16
                sums = twin(module, inputs, output)
            if self._mode == "split":  # detached, float64: totals over a whole split
                sums = {k: v.detach().double() if isinstance(v, torch.Tensor) else v for k, v in sums.items()}
                store = self._split
            else:
                store = self._pending
            old = store.get(module)
            store[module] = sums if old is None else {k: old[k] + v for k, v in sums.items()}

        return hook

    def clear(self) -> None:
        """Forget the calls since the last estimate (forwards that are no batch of ours)."""
        self._pending.clear()

    def _named(self, sums: dict[nn.Module, Sums]) -> dict[str, Sums]:
        if self.structure is None:
            raise RuntimeError("EnergyEstimator.calibrate(batch) must run before the first estimate")
        out = {}
        for module, layer in sums.items():
            name = self.names[module]
            if name not in self.structure:
                raise RuntimeError(f"energy estimate: layer {name} ran but not in the calibration batch")
            out[name] = layer
        return out

    def samples_in(self, sums: dict[str, Sums]) -> int:
        """Samples behind ``sums``: the first layer's summed size over its size per sample."""
        assert self.structure is not None
        for name, rec in self.structure.items():
            if name in sums:
                key, field = SAMPLE_SIZE[self.kinds[name]]
                return round(float(sums[name][key]) / float(getattr(rec, field)))
        return 0

    # --- pricing -----------------------------------------------------------------------------------
    def profile_of(self, sums: dict[str, Sums], samples: int, batches: int = 1) -> Profile:
        """The profiler's records for these sums (per sample), with tensors where they carry data."""
        assert self.structure is not None
        profile = Profile(model=type(self.model).__name__, samples=samples, batches=batches,
                          time_steps=self.time_steps)  # fmt: skip
        lists = {"synapse": profile.synapses, "product": profile.products, "neuron": profile.neurons}
        for name, rec in self.structure.items():  # calibration order: the profiler's execution order
            if name in sums:
                kind = self.kinds[name]
                lists[kind].append(_BUILD[kind](rec, sums[name], samples))
        return profile

    def price_profile(self, profile: Profile) -> Any:
        """Total pJ per sample of ``profile`` under this estimator's energy model."""
        return self.price(profile, self.options).total_pj

    def energy(self, samples: int | None = None) -> torch.Tensor:
        """pJ per sample of the batch run since the last estimate (differentiable)."""
        pending, self._pending = self._pending, {}
        sums = self._named(pending)
        samples = samples or self.samples_in(sums)
        if not samples:
            raise RuntimeError("energy estimate: no hooked layer ran since the last estimate")
        total = self.price_profile(self.profile_of(sums, samples))
        return total if isinstance(total, torch.Tensor) else torch.tensor(float(total))

    # --- split totals ------------------------------------------------------------------------------
    def begin_split(self) -> None:
        """From now on, calls add to split totals (detached) instead of the next batch estimate."""
        self._split, self._split_batches, self._mode = {}, 0, "split"
        self._pending.clear()

    def end_split(self) -> None:
        self._mode = "batch"

    def split_sums(self) -> dict[str, dict[str, float]]:
        """The split totals as Python floats, by layer name."""
        named = self._named(self._split)
        return {name: {k: float(v) for k, v in sums.items()} for name, sums in named.items()}

    def split_profile(self, sums: dict[str, dict[str, float]] | None = None) -> Profile:
        sums = self.split_sums() if sums is None else sums
        return self.profile_of(sums, self.samples_in(sums))

    def split_energy(self, sums: dict[str, dict[str, float]] | None = None) -> float:
        """pJ per sample over the split (``sums``: totals reduced elsewhere, e.g. over ranks)."""
        sums = self.split_sums() if sums is None else sums
        if not self.samples_in(sums):
            return math.nan
        return float(self.price_profile(self.split_profile(sums)))


# Per counter kind: (the sums key, the record field) of a layer's size per sample, to count samples.
SAMPLE_SIZE: dict[str, tuple[str, str]] = {
    "synapse": ("dense_macs", "dense_macs"),
    "product": ("dense_ops", "dense_ops"),
    "neuron": ("updates", "membrane_updates"),
}


def estimate_batch_energy(
    estimator: EnergyEstimator, batch: Any, *, forward: Forward | None = None
) -> tuple[Any, torch.Tensor]:
    """Run ``batch`` through the model with hooks on; (output, pJ per sample with gradients)."""
    forward = forward or estimator.forward
    estimator.clear()
    with estimator:
        out = forward(estimator.model, batch)
        return out, estimator.energy()
