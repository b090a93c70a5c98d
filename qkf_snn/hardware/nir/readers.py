"""NIR readers as judges: one table from reader name to how it loads a graph and runs it step by step.

Each entry loads the graph with the reader's *own* public entry point, unpatched:

- ``qkf``: this project's bridge (:class:`.norse_exec.NorseExecutor`: nirtorch + our node map on
  Norse cells, exact discrete LIF).
- ``snntorch``: ``snntorch.import_nir.import_from_nir(graph)`` (nirtorch's ``nir_to_torch``
  underneath; LIF → ``snn.Leaky`` with its hard-coded ``dt = 1e-4``).
- ``norse``: ``norse.torch.from_nir(graph, dt=metadata["dt"])`` (nirtorch's deprecated
  ``GraphExecutor`` underneath; LIF → ``LIFBoxCell``).

The harness around a stock module only feeds inputs, carries the state from step to step, records
every node's output with forward hooks (nodes are submodules named after the graph's node names)
and, for ``precision="pinned"``, runs the synaptic submodules in float64 (a cast of their float32
weights) while the reader's neuron modules keep computing in float32 (their inputs cast back to
float32), the same split the reference model uses (see :mod:`.verify`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nir
import torch
from torch import nn

from qkf_snn.errors import UserError
from qkf_snn.hardware.nir.norse_exec import LifCell, NorseExecutor, Trace

Inputs = dict[str, torch.Tensor]  # Input node name -> [B, T, ...] (or [B, ...] static)


class Runner:
    """A loaded graph: ``run(inputs, time_steps)`` gives the per-step output and every node's output."""

    def run(self, inputs: Inputs, time_steps: int) -> Trace:  # pragma: no cover - interface
        raise NotImplementedError


def _step_input(graph: nir.NIRGraph, name: str, x: torch.Tensor, t: int) -> torch.Tensor:
    want = len(graph.nodes[name].input_type["input"]) + 1  # batch + per-step shape
    return x[:, t] if x.dim() == want + 1 else x


class _QkfRunner(Runner):
    def __init__(self, graph: nir.NIRGraph, dt: float, dtype: torch.dtype, lif_cell: LifCell) -> None:
        self.executor = NorseExecutor(graph, dt, dtype=dtype, lif_cell=lif_cell)

    def run(self, inputs: Inputs, time_steps: int) -> Trace:
        return self.executor.run(inputs, time_steps)


class _StockRunner(Runner):
    """A stock reader's torch module, stepped one time step per call."""

    def __init__(
        self,
        graph: nir.NIRGraph,
        module: nn.Module,
        dtype: torch.dtype,
        is_neuron: Callable[[nn.Module], bool],
        step: Callable[[nn.Module, torch.Tensor, Any], tuple[torch.Tensor, Any]],
        reset: Callable[[nn.Module], None],
    ) -> None:
        self.graph, self.module, self.dtype, self.step, self.reset = graph, module, dtype, step, reset
        self.inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
        self._record: dict[str, list[torch.Tensor]] | None = None
        names = set(graph.nodes)
        for name, sub in module.named_children():
            if is_neuron(sub):
                sub.register_forward_pre_hook(lambda m, args: (args[0].float(), *args[1:]))
                sub.register_forward_hook(self._cast_output)
            elif dtype != torch.float32:
                sub.to(dtype)  # synapses only: an exact cast of the float32 weights
            if name in names:
                sub.register_forward_hook(self._hook(name))

    def _cast_output(self, module: nn.Module, args: Any, out: Any) -> Any:
        if isinstance(out, tuple):  # (spikes, state)
            return (out[0].to(self.dtype), *out[1:])
        return out.to(self.dtype)

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if self._record is not None:
                y = out[0] if isinstance(out, tuple) else out
                self._record.setdefault(name, []).append(y.to(self.dtype))

        return hook

    @torch.no_grad()
    def run(self, inputs: Inputs, time_steps: int) -> Trace:
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise UserError(f"missing graph input(s) {sorted(missing)}")
        self.reset(self.module)
        self._record, state, outputs = {}, None, []
        try:
            for t in range(time_steps):
                # A stock module takes one tensor: the first Input node's (all a reader can be given).
                x = _step_input(self.graph, self.inputs[0], inputs[self.inputs[0]], t).to(self.dtype)
                y, state = self.step(self.module, x, state)
                outputs.append(y.to(self.dtype))
            nodes = {k: torch.stack(v) for k, v in self._record.items()}
        finally:
            self._record = None
        return Trace(torch.stack(outputs), nodes)


def _quiet():
    """Stock readers print and log on every LIF they convert; keep the report readable."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    stack.callback(logging.disable, logging.NOTSET)
    return stack


def _load_qkf(graph: nir.NIRGraph, dt: float, dtype: torch.dtype, lif_cell: LifCell = "exact") -> Runner:
    return _QkfRunner(graph, dt, dtype, lif_cell)


def _load_snntorch(graph: nir.NIRGraph, dt: float, dtype: torch.dtype) -> Runner:
    import snntorch as snn
    from snntorch.import_nir import import_from_nir

    with _quiet():
        module = import_from_nir(copy.deepcopy(graph))  # it rewrites graph.nodes/edges in place
    # snnTorch keeps every neuron ever built in a class-level list (for its init_hidden helpers);
    # drop ours so a loaded graph is freed with its module.
    ours = {id(m) for m in module.modules()}
    snn.SpikingNeuron.instances[:] = [m for m in snn.SpikingNeuron.instances if id(m) not in ours]

    def step(m: nn.Module, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        y, state = m(x)  # nirtorch's GraphModule: snn.Leaky(init_hidden=True) keeps its own membrane
        return y, state

    def reset(m: nn.Module) -> None:
        for sub in m.modules():
            if isinstance(sub, snn.SpikingNeuron):
                sub.mem = torch.zeros(0)  # re-initialised to zeros of the input's shape on the next call

    return _StockRunner(graph, module, dtype, lambda m: isinstance(m, snn.SpikingNeuron), step, reset)


def _load_norse(graph: nir.NIRGraph, dt: float, dtype: torch.dtype) -> Runner:
    with _quiet():
        import norse.torch
        from norse.torch.module.snn import SNNCell

        module = norse.torch.from_nir(graph, dt=dt)

    def step(m: nn.Module, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return m(x, state)

    return _StockRunner(graph, module, dtype, lambda m: isinstance(m, SNNCell), step, lambda m: None)


@dataclass(frozen=True)
class Reader:
    name: str
    summary: str
    load: Callable[[nir.NIRGraph, float, torch.dtype], Runner]


READERS: dict[str, Reader] = {
    r.name: r
    for r in (
        Reader("qkf", "qkf_snn's bridge: nirtorch.nir_to_torch + exact node map on Norse cells", _load_qkf),
        Reader("snntorch", "stock snntorch.import_nir.import_from_nir (snnTorch 1.0.0)", _load_snntorch),
        Reader("norse", "stock norse.torch.from_nir(graph, dt=metadata dt) (Norse 1.1.0)", _load_norse),
    )
}


def get_reader(name: str) -> Reader:
    try:
        return READERS[name]
    except KeyError:
        raise UserError(f"--reader {name!r}: choose one of {', '.join(READERS)} or all") from None


def reader_names(spec: str) -> list[str]:
    """``all`` or a comma-separated list of reader names, validated."""
    names = list(READERS) if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise UserError("--reader: give a reader name or 'all'")
    for n in names:
        get_reader(n)
    return names
