"""Our bridge (reader ``qkf``): run an NIR graph step by step on Norse cells, through
``nirtorch.nir_to_torch`` with our node map.

It runs every target's file, including what stock ``norse.torch.from_nir`` cannot (Norse 1.1.0 drops
LIF's ``r``, has no Threshold/Scale/Conv1d, drops SumPool2d padding, flattens the batch, runs one
Input node and walks the graph depth-first; see :mod:`.readers` and docs/nir.md).
``nirtorch.nir_to_torch`` sums several inputs into a node for any edge order, so it only needs a
node map that is right for every node type we emit:

- ``LIF`` / ``IF`` → :class:`DiscreteLIFCell`, a Norse ``SNNCell`` whose step is the exact discrete
  mapping of :mod:`.nodes` (``v ← β·v + g·I``, Norse's Heaviside ``v − v_th > 0``, Norse's
  ``reset_value``). Norse's own ``LIFBoxCell`` integrates ``v + dt/τ·(I − v)``, which is the same
  equation but rounds differently (about a third of float32 membranes differ by an ulp), so it is
  available as ``lif_cell="box"`` for comparison only.
- ``Threshold`` → Heaviside, ``SumPool2d`` → ``avg_pool2d`` with ``divisor_override=1`` (a sum, with
  padding, which nirtorch's default ignores), ``Affine`` explicit (nirtorch 2.6 drops its bias),
  ``Flatten`` with dims shifted past the batch, ``Scale`` elementwise.
- nirtorch accepts one graph input: the Input nodes are replaced by pickers reading one entry of a
  dict fed to a single placeholder (``{"input.audio": ..., "input.video": ...}``).
"""

from __future__ import annotations

import heapq
import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import nir
import numpy as np
import torch
from torch import nn

from qkf_snn.errors import UserError
from qkf_snn.hardware.nir.io import metadata
from qkf_snn.hardware.nir.nodes import nir_neuron_params

with warnings.catch_warnings():  # Norse 1.1.0 calls torch.jit.script at import time
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import nirtorch
    from norse.torch import LIFBoxCell, LIFBoxParameters
    from norse.torch.functional.heaviside import heaviside
    from norse.torch.functional.reset import reset_value
    from norse.torch.module.snn import SNNCell

LifCell = Literal["exact", "box"]


# -- the exact discrete LIF as a Norse functional step + cell ----------------------------------------
class DiscreteLIFParameters(NamedTuple):
    beta: torch.Tensor  # membrane decay per step, 1 − dt/τ
    gain: torch.Tensor  # input gain per step, dt·r/τ (IF: dt·r)
    v_th: torch.Tensor  # fire on v − v_th > 0
    v_reset: torch.Tensor
    leak: torch.Tensor | None  # (dt/τ)·v_leak; None when zero (nothing is added)
    # SpikingJelly-form neurons (node metadata form="spikingjelly"): τ in steps (float32) and
    # whether the input decays; the step is then H = V + (I - V)/τ or V - V/τ + I, as the model's.
    tau: torch.Tensor | None = None
    decay_input: bool = True


class DiscreteLIFState(NamedTuple):
    v: torch.Tensor  # membrane after the last step's reset


def discrete_lif_step(
    input_tensor: torch.Tensor, state: DiscreteLIFState, p: DiscreteLIFParameters, dt: float = 1.0
) -> tuple[torch.Tensor, DiscreteLIFState]:
    r"""One step of the discrete LIF (``dt`` is already folded into β and the gain):

    .. math::
        v = \beta v + g I \;(+ \ell), \quad z = \Theta(v - v_{th}), \quad v = (1 - z) v + z v_{reset}

    The products and the sum are done in the order snnTorch does them, so membranes are bit-equal.
    """
    if p.tau is not None:  # SpikingJelly's expression (models/neurons/lif.py)
        v = state.v
        v = v + (input_tensor - v) / p.tau if p.decay_input else v - v / p.tau + input_tensor
    else:
        v = p.beta * state.v + input_tensor * p.gain  # decay, then add the scaled input
    if p.leak is not None:
        v = v + p.leak
    z = heaviside(v - p.v_th)  # Norse's Heaviside: 1 where v − v_th > 0
    return z, DiscreteLIFState(v=reset_value(z, v, p.v_reset, p.v_th))


class DiscreteLIFCell(SNNCell):
    """Norse cell for NIR ``LIF`` / ``IF`` nodes with the exact discrete update."""

    def __init__(self, p: DiscreteLIFParameters, dt: float) -> None:
        super().__init__(discrete_lif_step, self._zero_state, p=None, dt=dt)
        self.decay_input = p.decay_input
        for name, value in p._asdict().items():  # buffers, so .to(device) moves them
            if name != "decay_input":
                self.register_buffer(name, value)
        self.has_leak = bool(p.leak.any())

    def _zero_state(self, x: torch.Tensor) -> DiscreteLIFState:
        return DiscreteLIFState(v=torch.zeros_like(x))

    def forward(self, input_tensor: torch.Tensor, state: Any = None):  # type: ignore[override]
        # Neurons always compute in float32 (as the model's do), whatever dtype the synapses use;
        # the buffers hold float32 values, so casting them back is exact.
        x = input_tensor.float()
        leak = self.leak.float() if self.has_leak else None
        tau = None if self.tau is None else self.tau.float()
        p = DiscreteLIFParameters(
            self.beta.float(),
            self.gain.float(),
            self.v_th.float(),
            self.v_reset.float(),
            leak,
            tau,
            self.decay_input,
        )
        state = state if state is not None else self._zero_state(x)
        z, state = discrete_lif_step(x, state, p, self.dt)
        return z.to(input_tensor.dtype), state


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))  # a writable copy


def _map_neuron(node: nir.NIRNode, dt: float, cell: LifCell) -> nn.Module:
    beta, gain, v_th, v_reset, leak = nir_neuron_params(node, dt)
    if cell == "box":
        if isinstance(node, nir.IF) or leak.any() or not np.allclose(gain, 1 - beta):
            raise UserError("lif_cell='box' runs only LIF nodes with r = 1 and v_leak = 0")
        return _BoxCell(
            LIFBoxParameters(
                tau_mem_inv=_t((1 - beta) / dt),
                v_th=_t(v_th),
                v_reset=_t(v_reset),
                v_leak=torch.tensor(0.0),
                method="heaviside",
            ),
            dt,
        )
    meta = metadata(node)
    sj = {}
    if meta.get("form") == "spikingjelly":
        sj = dict(tau=torch.tensor(meta["tau_steps"], dtype=torch.float32), decay_input=meta["decay_input"])
    return DiscreteLIFCell(
        DiscreteLIFParameters(_t(beta), _t(gain), _t(v_th), _t(v_reset), _t(leak), **sj), dt
    )


class _BoxCell(LIFBoxCell):
    """Norse's ``LIFBoxCell`` (float32) with a ``state`` argument nirtorch recognises."""

    def forward(self, input_tensor: torch.Tensor, state: Any = None):  # type: ignore[override]
        z, state = super().forward(input_tensor.float(), state)
        return z.to(input_tensor.dtype), state


# -- stateless nodes ---------------------------------------------------------------------------------
class Threshold(nn.Module):
    def __init__(self, threshold: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("threshold", _t(threshold))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return heaviside(x - self.threshold)


class SumPool2d(nn.Module):
    def __init__(self, node: nir.SumPool2d) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = (
            tuple(int(v) for v in np.broadcast_to(a, (2,)))
            for a in (node.kernel_size, node.stride, node.padding)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(
            x, self.kernel, self.stride, self.padding, count_include_pad=True, divisor_override=1
        )


class Scale(nn.Module):
    def __init__(self, scale: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("scale", _t(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Pick(nn.Module):
    """Reads one entry of the input dict: stands in for one NIR Input node."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return x[self.key]


@dataclass(eq=False)
class _PickNode(nir.NIRNode):
    """In-memory stand-in for an Input node (never written to a file)."""

    key: str

    def __post_init__(self) -> None:
        self.input_type = {"input": None}
        self.output_type = {"output": None}


def _conv2d(node: nir.Conv2d) -> nn.Conv2d:
    w = np.asarray(node.weight)
    pair = lambda v: tuple(int(a) for a in np.broadcast_to(np.asarray(v), (2,)))  # noqa: E731
    if isinstance(node.padding, str):
        raise UserError(f"Conv2d padding {node.padding!r} is not supported; export explicit padding")
    conv = nn.Conv2d(
        w.shape[1] * int(node.groups),
        w.shape[0],
        tuple(w.shape[2:]),
        stride=pair(node.stride),
        padding=pair(node.padding),
        dilation=pair(node.dilation),
        groups=int(node.groups),
    )
    conv.weight.data = _t(w)
    conv.bias.data = _t(np.broadcast_to(np.asarray(node.bias, dtype=np.float32), (w.shape[0],)))
    return conv


def _linear(node: nir.NIRNode) -> nn.Linear:
    w = np.asarray(node.weight)
    linear = nn.Linear(w.shape[1], w.shape[0], bias=isinstance(node, nir.Affine))
    linear.weight.data = _t(w)
    if isinstance(node, nir.Affine):
        linear.bias.data = _t(node.bias)
    return linear


def _flatten(node: nir.Flatten) -> nn.Flatten:
    # NIR dims exclude the batch; negative dims count from the end either way.
    shift = lambda d: int(d) + 1 if int(d) >= 0 else int(d)  # noqa: E731
    return nn.Flatten(shift(node.start_dim), shift(node.end_dim))


def node_map(dt: float, lif_cell: LifCell = "exact") -> dict[type, Any]:
    """NIR node type → torch module factory, for ``nirtorch.nir_to_torch``."""
    return {
        nir.Input: lambda n: nn.Identity(),
        nir.Output: lambda n: nn.Identity(),
        _PickNode: lambda n: Pick(n.key),
        nir.LIF: lambda n: _map_neuron(n, dt, lif_cell),
        nir.IF: lambda n: _map_neuron(n, dt, lif_cell),
        nir.Threshold: lambda n: Threshold(n.threshold),
        nir.Conv2d: _conv2d,
        nir.SumPool2d: SumPool2d,
        nir.Affine: _linear,
        nir.Linear: _linear,
        nir.Flatten: _flatten,
        nir.Scale: lambda n: Scale(n.scale),
    }


def _sanitize(name: str) -> str:
    return nirtorch.nir_interpreter._sanitize_name(name)


def topological_order(graph: nir.NIRGraph) -> list[str]:
    """Nodes from inputs to outputs; ties keep the order of ``graph.nodes`` (any edge order works)."""
    index = {name: i for i, name in enumerate(graph.nodes)}
    indegree = dict.fromkeys(graph.nodes, 0)
    children = defaultdict(list)
    for src, dst in graph.edges:
        children[src].append(dst)
        indegree[dst] += 1
    ready = [(index[n], n) for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for child in children[name]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, (index[child], child))
    if len(order) != len(graph.nodes):
        raise UserError("the NIR graph has a cycle; only feed-forward graphs can be verified")
    return order


def _single_input(graph: nir.NIRGraph) -> nir.NIRGraph:
    """The same graph with its Input nodes replaced by pickers behind one Input (nirtorch takes one)."""
    nodes: dict[str, nir.NIRNode] = {"__inputs__": nir.Input(input_type={"input": np.array([1])})}
    edges = []
    # Nodes in topological order: nirtorch re-queues a node whose inputs are not built yet and
    # re-scans the edges each time, so a file's alphabetical order costs it several times more.
    for name in topological_order(graph):
        node = graph.nodes[name]
        if isinstance(node, nir.Input):
            nodes[name] = _PickNode(key=name)
            edges.append(("__inputs__", name))
        else:
            nodes[name] = node
    return nir.NIRGraph(nodes=nodes, edges=edges + list(graph.edges), metadata={}, type_check=False)


@dataclass
class Trace:
    """Outputs ``[T, B, K]`` and every node's output ``[T, B, ...]`` of one run."""

    outputs: torch.Tensor
    nodes: dict[str, torch.Tensor]


class NorseExecutor:
    """An NIR graph as a step-by-step executable on Norse cells.

    ``run(inputs, time_steps)`` feeds ``inputs[name][:, t]`` (or the same static tensor every step)
    into each Input node ``name`` and records every node's output at every step. ``dtype`` is the
    precision of the synaptic nodes (conv, pool, affine); neurons always run in float32.
    """

    def __init__(
        self,
        graph: nir.NIRGraph,
        dt: float | None = None,
        *,
        lif_cell: LifCell = "exact",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if any(isinstance(n, nir.NIRGraph) for n in graph.nodes.values()):
            raise UserError("nested NIR subgraphs are not supported by this executor")
        if dt is None:
            dt = metadata(graph).get("dt")
            if dt is None:
                raise UserError("the NIR graph records no dt in its metadata; pass dt explicitly")
        self.graph, self.dt = graph, float(dt)
        unsupported = sorted(
            {type(n).__name__ for n in graph.nodes.values()} - {t.__name__ for t in node_map(1.0)}
        )
        if unsupported:
            raise UserError(f"NIR node types without a Norse mapping here: {', '.join(unsupported)}")
        names = {_sanitize(n): n for n in graph.nodes}
        if len(names) != len(graph.nodes):
            raise UserError("NIR node names collide once '.' is replaced by '_' (nirtorch's module names)")
        self.inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
        self.dtype = dtype
        self.module = nirtorch.nir_to_torch(_single_input(graph), node_map(self.dt, lif_cell), dtype=dtype)
        self._record: dict[str, list[torch.Tensor]] | None = None
        for sanitized, sub in self.module.named_children():
            if sanitized in names:
                sub.register_forward_hook(self._hook(names[sanitized]))

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if self._record is not None:
                self._record.setdefault(name, []).append(out[0] if isinstance(out, tuple) else out)

        return hook

    @torch.no_grad()
    def run(self, inputs: dict[str, torch.Tensor], time_steps: int, record: bool = True) -> Trace:
        """``inputs``: per Input node, ``[B, T, ...]`` sequences or ``[B, ...]`` static tensors."""
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise UserError(f"missing graph input(s) {sorted(missing)}")
        self._record = {} if record else None
        state, outputs = None, []
        try:
            for t in range(time_steps):
                step = {}
                for name in self.inputs:
                    x = inputs[name]
                    want = len(self.graph.nodes[name].input_type["input"]) + 1  # batch + per-step shape
                    step[name] = (x[:, t] if x.dim() == want + 1 else x).to(self.dtype)
                out = self.module(step, state)
                *ys, state = out
                outputs.append(ys[0] if len(ys) == 1 else sum(ys))
            nodes = {k: torch.stack(v) for k, v in (self._record or {}).items()}
        finally:
            self._record = None
        return Trace(torch.stack(outputs), nodes)
