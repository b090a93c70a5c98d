"""The profiler: forward hooks on the counted modules, per-layer accumulation, per-sample records.

    with Profiler(model) as prof:
        for batch in batches:
            prof.run(batch)              # or call model(batch) yourself: one root call = one batch
    profile = prof.result()

or simply ``profile_model(model, batches)``. Hooks return nothing, so outputs are bit-identical to
plain inference; each hooked call costs a few tensor reductions and no host synchronisation.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from qkf_snn.hardware.profile.audit import FunctionalAudit
from qkf_snn.hardware.profile.counters import CallStats, Counter, by_sample, find_counter
from qkf_snn.hardware.profile.kinds import KINDS, OUTPUT_KIND, REAL, SPIKE, KindTracer, join, output_kind
from qkf_snn.hardware.profile.records import (
    NeuronRecord,
    OperandRecord,
    OtherRecord,
    ProductRecord,
    Profile,
    SynapseRecord,
    UnattributedRecord,
)
from qkf_snn.models.quant import quant_spec_of, quantize_model

# Synaptic layers whose last name component is `head` or ends in `_head` are read-out heads
# (the paper convention lets them be counted as MAC or AC).
HEAD_PATTERN = r"(^|\.)([A-Za-z0-9]+_)?head$"
# A synaptic layer's role from its input's kind: real input makes it a MAC ("analog") layer.
ROLES: dict[str, str] = dict(zip(KINDS, ("spike", "integer", "analog"), strict=True))

Forward = Callable[[nn.Module, Any], Any]


def batch_size(batch: Any) -> int:
    """Samples in a batch: dimension 0 of its first tensor (dicts, tuples and tensors alike)."""
    for leaf in tree_flatten(batch)[0]:
        if isinstance(leaf, torch.Tensor) and leaf.dim() > 0:
            return int(leaf.shape[0])
    raise ValueError("cannot tell the batch size: the batch holds no tensor with a batch dimension")


def take(batch: Any, n: int) -> Any:
    """The first ``n`` samples of a batch (every tensor sliced along dimension 0)."""
    return tree_map(lambda t: t[:n] if isinstance(t, torch.Tensor) and t.dim() > 0 else t, batch)


class _Call:
    """One hooked call: its statistics, with the tensor scalars stacked into one vector so that a
    batch reads back a few hundred small tensors instead of thousands of 0-d ones."""

    __slots__ = ("stats", "keys", "packed")

    def __init__(self, stats: CallStats) -> None:
        self.stats = stats
        self.keys: list[tuple[str, str]] = []
        scalars = []
        for section in ("add", "low", "high"):
            for key, value in getattr(stats, section).items():
                if isinstance(value, torch.Tensor):
                    self.keys.append((section, key))
                    scalars.append(value)
        self.packed = torch.stack(scalars) if scalars else None


class _Layer:
    """Running sums (Python floats) of one module's call statistics."""

    def __init__(self, name: str, module: nn.Module, counter: Counter, order: int) -> None:
        self.name, self.module, self.counter, self.order = name, module, counter, order
        self.pending: list[_Call] = []  # this batch's calls, still on the device
        self.add: dict[str, float] = defaultdict(float)
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}
        self.info: dict[str, Any] = {}
        self.static: dict[str, Any] = {}  # counter.describe(module)
        self.steps: dict[str, list[float]] = {}
        self.steps_ok = True
        self.calls = 0
        self.kinds: list[str] = []  # per positional input, joined over calls (kinds.py)

    def record(self, stats: CallStats, kinds: list[str]) -> None:
        self.calls += 1
        if len(kinds) > len(self.kinds):
            self.kinds += kinds[len(self.kinds) :]
        self.kinds = [join([a, b]) for a, b in zip(self.kinds, kinds + self.kinds[len(kinds) :], strict=True)]
        self.pending.append(_Call(stats))
        if not self.info:
            self.info = dict(stats.info)

    def batch_time_steps(self) -> int | None:
        """T as this neuron layer saw it in the current batch (multi-step: its leading dim;
        single-step: its number of calls)."""
        calls = [c.stats for c in self.pending if "spikes" in c.stats.rows]
        if not calls:
            return None
        return len(calls[0].rows["spikes"]) if self.info.get("multistep") else len(calls)

    def input_kind(self, i: int) -> str:
        return self.kinds[i] if i < len(self.kinds) else REAL

    def absorb(
        self, calls: list[tuple[dict, dict, dict, dict, dict]], steps: int, samples: int, time_major: bool
    ) -> None:
        """Add this batch's calls, already read back as Python numbers."""
        rows: dict[str, list[list[float]]] = defaultdict(list)
        for (add, low, high, vecs, per_row), post in zip(
            calls, [c.stats.post for c in self.pending], strict=True
        ):
            if post is not None:
                groups = {k: by_sample(v, samples) for k, v in per_row.items()}
                add = {**add, **post({**add, **low, **high}, groups)}
            for k, v in add.items():
                self.add[k] += v
            for k, v in low.items():
                self.low[k] = min(self.low.get(k, v), v)
            for k, v in high.items():
                self.high[k] = max(self.high.get(k, v), v)
            for k, v in vecs.items():
                rows[k].append(v)
        for key, vecs in rows.items():
            per_step = _to_steps(vecs, steps, samples, time_major)
            if per_step is None or (key in self.steps and len(self.steps[key]) != len(per_step)):
                self.steps_ok = False
                continue
            old = self.steps.get(key, [0.0] * len(per_step))
            self.steps[key] = [a + b for a, b in zip(old, per_step, strict=True)]
        self.pending.clear()


def _to_steps(vecs: list[list[float]], steps: int, samples: int, time_major: bool) -> list[float] | None:
    """Per-step sums of one layer's row vectors in a batch. Rows are ``T·B`` (conv/linear on merged
    time and batch), ``T`` per call (time-major layers of multi-step models, possibly called more
    than once), or one call per step (single-step models); anything else has no per-step split."""
    if all(len(v) == steps * samples for v in vecs):
        return [sum(sum(v[t * samples : (t + 1) * samples]) for v in vecs) for t in range(steps)]
    if time_major:
        if all(len(v) == steps for v in vecs):
            return [sum(v[t] for v in vecs) for t in range(steps)]
        return None
    if len(vecs) == steps:
        return [sum(v) for v in vecs]
    return None


def _read_back(tensors: list[torch.Tensor]) -> list[list[float]]:
    """Every tensor's values as a Python list, with one transfer (and one synchronisation) per
    device: the tensors are flattened, concatenated (promoting dtypes) and read at once."""
    out: list[list[float]] = [[] for _ in tensors]
    by_device: dict[torch.device, list[int]] = defaultdict(list)
    for i, t in enumerate(tensors):
        by_device[t.device].append(i)
    for idx in by_device.values():
        flat = torch.cat([tensors[i].reshape(-1) for i in idx]).tolist()  # cat promotes dtypes
        start = 0
        for i in idx:
            n = tensors[i].numel()
            out[i] = flat[start : start + n]
            start += n
    return out


class Profiler:
    """Context manager that counts spikes, synaptic events and operations of ``model``.

    Every module whose class has a counting rule (``counters.COUNTERS``) gets a forward hook.
    A batch is one ``run()`` call, or one call of the root module when you drive the model
    yourself. Modules with parameters but no rule are listed as unattributed.
    """

    def __init__(self, model: nn.Module, *, head_pattern: str = HEAD_PATTERN) -> None:
        self.model = model
        self.head_pattern = re.compile(head_pattern)
        self.names = {m: (n or "model") for n, m in model.named_modules()}
        self.layers: dict[nn.Module, _Layer] = {}
        self.samples = 0
        self.batches = 0
        self.time_steps = 0
        self.audited = False
        self._audit_entries: list = []
        self._audit_samples = 0
        self._handles: list = []
        self._batch_samples: int | None = None
        self._in_run = False
        self._depth = 0
        self._busy = False
        self._tracer: KindTracer | None = None  # active while a batch runs
        # Inside a neuron (its output's kind is declared) torch functions are not traced: the
        # neurons' step loops are most of a model's torch calls. A stack, since neurons may nest.
        self._opaque: list[torch._C.DisableTorchFunction] = []
        self._closed = False

    # --- hooks -------------------------------------------------------------------------------------
    def __enter__(self) -> Profiler:
        for module in self.model.modules():
            counter = find_counter(module)
            if counter is not None and counter.rule is not None:
                self._handles.append(module.register_forward_hook(self._make_hook(module, counter)))
                if counter.kind in OUTPUT_KIND:  # the tracer does not follow what happens inside
                    self._handles.append(module.register_forward_pre_hook(self._enter_opaque))
                    self._handles.append(module.register_forward_hook(self._leave_opaque, always_call=True))
        self._handles.append(self.model.register_forward_pre_hook(self._root_pre, with_kwargs=True))
        self._handles.append(self.model.register_forward_hook(self._root_post))
        self._handles.append(self.model.register_forward_hook(self._root_failed, always_call=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_hook(self, module: nn.Module, counter: Counter):
        def hook(mod: nn.Module, inputs: tuple, output: Any) -> None:
            self._busy = True
            # No torch function mode (the tracer, the audit, a user's) sees our own reductions.
            with torch._C.DisableTorchFunction(), torch.no_grad():
                try:
                    layer = self.layers.get(mod)
                    if layer is None:
                        layer = self.layers[mod] = _Layer(self.names[mod], mod, counter, len(self.layers))
                        if counter.describe is not None:
                            layer.static = counter.describe(mod)
                    stats = counter.rule(mod, inputs, output)
                    tracer = self._tracer
                    tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
                    kinds = [tracer.kind(t) if tracer else REAL for t in tensors]
                    if tracer is not None and counter.kind in OUTPUT_KIND:
                        # single-step snnTorch neurons return (spk, mem): only spk is spikes
                        spikes = output[0] if isinstance(output, tuple) else output
                        tracer.mark(spikes, output_kind(mod, counter.kind))
                    layer.record(stats, kinds)
                finally:
                    self._busy = False

        return hook

    def _enter_opaque(self, module: nn.Module, inputs: tuple) -> None:
        if self._tracer is not None:
            off = torch._C.DisableTorchFunction()
            off.__enter__()
            self._opaque.append(off)

    def _leave_opaque(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        if self._opaque:  # always called, also when the neuron raised
            self._opaque.pop().__exit__(None, None, None)

    def _root_pre(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._depth += 1
        if not self._in_run and self._depth == 1:
            self._begin(batch_size((args, kwargs)))
            self._trace(True)

    def _root_post(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        self._depth -= 1
        self._closed = True
        if not self._in_run and self._depth == 0:
            self._trace(False)
            self._end()

    def _root_failed(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        """Runs after every root call; when ``_root_post`` did not (the forward raised), the
        tracer is left and the batch counts for nothing."""
        if self._closed:
            self._closed = False
            return
        self._depth -= 1
        if not self._in_run and self._depth == 0:
            self._trace(False)
            self._discard()

    def _trace(self, on: bool) -> None:
        """Enter (a fresh) or leave the kind tracer of the current batch."""
        if on:
            self._tracer = KindTracer(lambda: self._busy)
            self._tracer.__enter__()
        elif self._tracer is not None:
            tracer, self._tracer = self._tracer, None
            tracer.__exit__(None, None, None)

    def _discard(self) -> None:
        for layer in self.layers.values():  # a failed batch counts for nothing
            layer.pending.clear()

    def _begin(self, samples: int) -> None:
        self._batch_samples = samples

    def _end(self) -> None:
        self._busy = True
        try:
            samples = self._batch_samples or 0
            steps = [t for t in (layer.batch_time_steps() for layer in self.layers.values()) if t]
            batch_steps = max(steps, default=1)
            # Multi-step neurons mean a time-major model: [T, ...] rows are time steps.
            time_major = not any(
                layer.pending and layer.info.get("multistep") is False for layer in self.layers.values()
            )
            # Read every tensor statistic of this batch back at once: one synchronisation per batch.
            calls = [(layer, call) for layer in self.layers.values() for call in layer.pending]
            packed = [call.packed for _, call in calls if call.packed is not None]
            rows = [v for _, call in calls for v in (*call.stats.rows.values(), *call.stats.samples.values())]
            values = _read_back(packed + rows)
            scalars, vectors = iter(values[: len(packed)]), iter(values[len(packed) :])
            resolved: dict[_Layer, list] = defaultdict(list)
            for layer, call in calls:
                st = call.stats
                sections = {
                    "add": {k: v for k, v in st.add.items() if not isinstance(v, torch.Tensor)},
                    "low": {},
                    "high": {},
                }
                if call.packed is not None:
                    for (section, key), value in zip(call.keys, next(scalars), strict=True):
                        sections[section][key] = value
                vecs = {key: next(vectors) for key in st.rows}
                per_row = {key: next(vectors) for key in st.samples}
                resolved[layer].append((sections["add"], sections["low"], sections["high"], vecs, per_row))
            for layer in self.layers.values():
                if layer.pending:
                    layer.absorb(resolved[layer], batch_steps, samples, time_major)
            self.time_steps = max(self.time_steps, batch_steps)
            self.samples += samples
            self.batches += 1
        finally:
            self._busy = False

    # --- driving -----------------------------------------------------------------------------------
    def run(self, batch: Any, *, forward: Forward | None = None, audit: bool = False) -> Any:
        """Run one batch (``forward(model, batch)``, default ``model(batch)``) under no_grad; all
        root calls inside it form one batch. ``audit`` also records functional operators."""
        forward = forward or (lambda model, b: model(b))
        self._begin(batch_size(batch))
        self._in_run = True
        self._trace(True)
        try:
            with torch.no_grad():
                if audit:
                    covered = lambda m: find_counter(m) is not None  # noqa: E731
                    with FunctionalAudit(self.model, self.names, covered, lambda: self._busy) as rec:
                        out = forward(self.model, batch)
                    self._audit_entries = list(rec.entries.values())
                    self._audit_samples = self._batch_samples or 1
                    self.audited = True
                else:
                    out = forward(self.model, batch)
        except BaseException:
            self._discard()
            raise
        finally:
            self._trace(False)
            self._in_run = False
        self._end()
        return out

    # --- results -----------------------------------------------------------------------------------
    def result(self) -> Profile:
        """Per-sample records of everything counted so far."""
        if self.samples == 0:
            raise ValueError("nothing was profiled: run at least one batch first")
        profile = Profile(
            model=type(self.model).__name__,
            samples=self.samples,
            batches=self.batches,
            time_steps=self.time_steps,
            audited=self.audited,
        )
        for layer in sorted(self.layers.values(), key=lambda l: l.order):
            kind = layer.counter.kind
            if kind == "neuron":
                profile.neurons.append(self._neuron(layer))
            elif kind == "synapse":
                profile.synapses.append(self._synapse(layer))
            elif kind == "product":
                profile.products.append(self._product(layer))
            elif kind in ("norm", "pool"):
                profile.others.append(self._other(layer))
        profile.others.extend(self._functional_others())
        profile.unattributed.extend(self._unattributed())
        return profile

    def _per_sample(self, value: Any) -> float:
        return float(value) / self.samples

    def _steps(self, layer: _Layer, key: str) -> list[float] | None:
        if not layer.steps_ok or key not in layer.steps:
            return None
        return [float(v) / self.samples for v in layer.steps[key]]

    def _group(self, name: str) -> str:
        return name.split(".", 1)[0]

    def _neuron(self, layer: _Layer) -> NeuronRecord:
        a = layer.add
        per_step = self._steps(layer, "spikes")
        steps = len(per_step) if per_step else self.time_steps
        neurons = float(a["updates"]) / self.samples / steps
        spikes = self._per_sample(a["spikes"])
        return NeuronRecord(
            name=layer.name,
            group=self._group(layer.name),
            cls=type(layer.module).__name__,
            neuron=str(layer.static.get("neuron")),
            threshold=layer.static.get("threshold"),
            leak=bool(layer.static.get("leak")),
            neurons=neurons,
            time_steps=steps,
            spikes=spikes,
            spikes_per_step=per_step,
            firing_rate=spikes / (neurons * steps) if neurons else 0.0,
            firing_rate_per_step=[s / neurons for s in per_step] if per_step and neurons else None,
            membrane_updates=self._per_sample(a["updates"]),
            active_updates=self._per_sample(a["active_updates"]),
            binary_output=layer.low["out_min"] >= 0 and layer.high["out_max"] <= 1,
        )

    @staticmethod
    def _max_abs(layer: _Layer, prefix: str) -> float:
        return max(abs(layer.low[f"{prefix}min"]), abs(layer.high[f"{prefix}max"]))

    def _synapse(self, layer: _Layer) -> SynapseRecord:
        a, info = layer.add, layer.info
        per_step = self._steps(layer, "events_value")
        steps = len(per_step) if per_step else self.time_steps
        kind = layer.input_kind(0)  # from the model's structure (kinds.py), not from the values
        role = "head" if self.head_pattern.search(layer.name) else ROLES[kind]
        elems = a["in_elems"]
        return SynapseRecord(
            name=layer.name,
            group=self._group(layer.name),
            cls=type(layer.module).__name__,
            op=info["op"],
            role=role,
            input_kind=kind,
            kernel=info["kernel"],
            stride=info["stride"],
            groups=info["groups"],
            fan_in=info["fan_in"],
            out_channels=info["out_channels"],
            weights=info["weights"],
            bias=info["bias"],
            time_steps=steps,
            inputs_per_step=elems / self.samples / steps,
            outputs_per_step=float(a["out_elems"]) / self.samples / steps,
            dense_macs=self._per_sample(a["dense_macs"]),
            valid_connections=self._per_sample(a["valid_connections"]),
            input_nonzero_share=float(a["in_nonzero"]) / elems if elems else 0.0,
            input_mean=float(a["in_abs_sum"]) / elems if elems else 0.0,
            input_max=self._max_abs(layer, "in_"),
            events_value=self._per_sample(a["events_value"]),
            events_nonzero=self._per_sample(a["events_nonzero"]),
            events_per_step=per_step,
            neurobench_ac=self._per_sample(a["neurobench_ac"]),
            neurobench_mac=self._per_sample(a["neurobench_mac"]),
            spikingjelly_synops=self._per_sample(a["spikingjelly_synops"]),
        )

    def _product(self, layer: _Layer) -> ProductRecord:
        a, info = layer.add, layer.info
        per_step = self._steps(layer, "events_value")
        operands = []
        for i, prefix in enumerate(("a_", "b_")):
            if f"{prefix}elems" not in a:
                continue
            elems = a[f"{prefix}elems"]
            operands.append(
                OperandRecord(
                    kind=layer.input_kind(i),
                    nonzero_share=float(a[f"{prefix}nonzero"]) / elems if elems else 0.0,
                    mean=float(a[f"{prefix}abs_sum"]) / elems if elems else 0.0,
                    max=self._max_abs(layer, prefix),
                )
            )
        return ProductRecord(
            name=layer.name,
            group=self._group(layer.name),
            cls=type(layer.module).__name__,
            op=info["op"],
            operands=operands,
            time_steps=len(per_step) if per_step else self.time_steps,
            dense_ops=self._per_sample(a["dense_ops"]),
            events_value=self._per_sample(a["events_value"]),
            events_nonzero=self._per_sample(a["events_nonzero"]),
            events_per_step=per_step,
            spikingjelly_synops=self._per_sample(a["spikingjelly_synops"]),
        )

    def _other(self, layer: _Layer) -> OtherRecord:
        a, info = layer.add, layer.info
        if info["op"] == "maxpool":
            analog = layer.input_kind(0) != SPIKE
            note = (
                "max over analog values (BN outputs, before the neuron): not event-driven"
                if analog
                else "max over spikes: an OR over the window"
            )
            return OtherRecord(
                layer.name, self._group(layer.name), type(layer.module).__name__, "maxpool",
                self._per_sample(a["comparisons"]), "comparisons", note,
            )  # fmt: skip
        return OtherRecord(
            layer.name, self._group(layer.name), type(layer.module).__name__, "batchnorm",
            self._per_sample(a["elems"]), "elements (0 ops)", info["note"],
        )  # fmt: skip

    def _functional_others(self) -> list[OtherRecord]:
        out = []
        for e in self._audit_entries:
            if e.rule is None:
                continue
            count = e.elements / self._audit_samples
            out.append(
                OtherRecord(
                    e.name, self._group(e.name), e.cls, e.rule.kind, count, f"{e.op} elements", e.rule.note
                )
            )
        return out

    def _unattributed(self) -> list[UnattributedRecord]:
        modules = {name: module for module, name in self.names.items()}
        out, leaves = [], set()
        for e in self._audit_entries:
            if e.rule is not None:
                continue
            module = modules.get(e.name)
            if module is not None and not any(True for _ in module.children()):
                reason = "module without a counting rule"
                leaves.add(e.name)
            else:
                reason = "arithmetic operator outside any counted module"
            out.append(
                UnattributedRecord(e.name, e.cls, e.op, e.calls, e.elements / self._audit_samples, reason)
            )
        for module, name in self.names.items():
            own = any(True for _ in module.parameters(recurse=False))
            if own and find_counter(module) is None and name not in leaves:
                out.append(
                    UnattributedRecord(
                        name,
                        type(module).__name__,
                        "(module)",
                        0,
                        0.0,
                        "module with parameters and no counting rule",
                    )
                )
        return out


def profile_model(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    forward: Forward | None = None,
    max_samples: int | None = None,
    audit: bool = True,
    head_pattern: str = HEAD_PATTERN,
) -> Profile:
    """Profile ``model`` in eval mode over ``batches`` (dicts, tensors, anything ``forward``
    accepts), up to ``max_samples`` samples. The first batch also audits functional operators.
    The model's train/eval mode is restored afterwards."""
    original, was_training = model, model.training
    model.eval()
    spec = quant_spec_of(model)
    if getattr(model, "qat_spec", None) is not None:
        # A QAT model's forward is its post-training quantization at the same bits, run through the
        # ordinary conv modules that the counters hook (the QAT path calls the conv function).
        model = quantize_model(model, spec)
    try:
        with Profiler(model, head_pattern=head_pattern) as prof:
            for i, batch in enumerate(batches):
                if max_samples is not None:
                    left = max_samples - prof.samples
                    if left <= 0:
                        break
                    if batch_size(batch) > left:
                        batch = take(batch, left)
                prof.run(batch, forward=forward, audit=audit and i == 0)
        profile = prof.result()
        profile.meta.update(
            weight_bits=None if spec is None else spec.bits,
            weight_precision="float32" if spec is None else spec.describe(),
        )
        return profile
    finally:
        original.train(was_training)
