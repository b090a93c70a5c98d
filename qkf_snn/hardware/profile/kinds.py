"""What kind of values a layer reads, decided from the model's structure, never from the values.

A tensor is
- ``spike`` if a spiking neuron emitted it (or it is a view, copy, max-pool or AND of spikes),
- ``integer`` if it is a sum of spike tensors: residual/shortcut additions (the integer stream),
  reductions and matrix products of spikes (QKTA's ΣQ, SSA's Kᵀ·V),
- ``real`` otherwise: the data input, conv/BN outputs, averages, scaled values.

Deciding from values made the numbers depend on the batch: an all-zero or all-binary input made the
stem conv a "spike" layer, and whether a 2 happened to appear in a batch typed the layers reading the
residual stream. Here one :class:`KindTracer` (a TorchFunctionMode active while a batch runs)
follows every torch function from the neurons' outputs onwards; ``PROPAGATION`` is the one table
that says what each operation makes of its inputs' kinds.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from qkf_snn.hardware.profile.audit import op_name

SPIKE, INTEGER, REAL = "spike", "integer", "real"
KINDS: tuple[str, ...] = (SPIKE, INTEGER, REAL)  # ordered: a join takes the later one

# What a counted module emits, by its counter kind (counters.Counter.kind): neurons emit spikes,
# whatever their backend computes inside. Every other output follows PROPAGATION.
OUTPUT_KIND: dict[str, str] = {"neuron": SPIKE}


def output_kind(module: Any, counter_kind: str) -> str:
    """What ``module`` (whose counter kind is in OUTPUT_KIND) emits: a neuron that says it does not
    spike (its ``spiking`` attribute, e.g. an ANN twin's ReLU) emits real values."""
    return OUTPUT_KIND[counter_kind] if getattr(module, "spiking", True) else REAL


def join(kinds: list[str]) -> str:
    """The kind of a mixture: real if any part is real, else integer if any is, else spike."""
    return max(kinds, key=KINDS.index, default=REAL)


def _scalar_kind(value: Any) -> str | None:
    """A Python number as an operand: 0/1 behave like spikes, other integers like counts."""
    if isinstance(value, bool):
        return SPIKE
    if isinstance(value, int):
        return SPIKE if value in (0, 1) else INTEGER
    if isinstance(value, float):
        return SPIKE if value in (0.0, 1.0) else INTEGER if value.is_integer() else REAL
    return None


Rule = Callable[[list[str], list[Any]], str]


def _same(kinds: list[str], scalars: list[Any]) -> str:  # views, copies, max over a window
    return kinds[0] if kinds else REAL


def _joined(kinds: list[str], scalars: list[Any]) -> str:  # cat, stack
    return join(kinds)


def _count(kinds: list[str], scalars: list[Any]) -> str:
    """Sums and products of counts: integer unless a real operand is involved."""
    parts = kinds + [_scalar_kind(s) or REAL for s in scalars]
    return REAL if REAL in parts or not kinds else INTEGER


def _product(kinds: list[str], scalars: list[Any]) -> str:
    """Elementwise product: spike × spike is an AND (spike); with counts, a count."""
    parts = kinds + [_scalar_kind(s) or REAL for s in scalars]
    return REAL if REAL in parts or not kinds else join(parts)


_VIEWS = """view view_as reshape reshape_as flatten unflatten transpose swapaxes permute movedim t
    unsqueeze squeeze expand expand_as contiguous clone detach to float double half bfloat16 cpu cuda
    __getitem__ select narrow repeat flip roll chunk split unbind dropout identity
    max_pool1d max_pool2d max_pool3d _max_pool1d _max_pool2d _max_pool3d max_pool1d_with_indices
    max_pool2d_with_indices max_pool3d_with_indices""".split()

# torch function name (audit.op_name: methods, reflected and in-place forms normalised) -> the kind
# of its output from its tensor operands' kinds and its Python-number operands. Anything not listed
# produces real values (conv, linear, BN, mean, division, neurons' internals...).
PROPAGATION: dict[str, Rule] = {
    **{name: _same for name in _VIEWS},
    **{name: _joined for name in ("cat", "concat", "concatenate", "stack")},
    **{name: _count for name in ("add", "sub", "sum", "matmul", "bmm", "mm")},
    "mul": _product,
}


_ARITHMETIC = frozenset({"add", "sub", "mul"})


def _tensors(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """Tensor operands, also inside a list (cat, stack): one level, without pytree's cost."""
    out = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, torch.Tensor))
    return out


_OPS: dict[Any, str] = {}  # torch function -> op_name(function), memoised: this runs on every call


class KindTracer(TorchFunctionMode):
    """Tags tensors with their kind as the model runs. Untagged tensors (the data) are real.

    ``busy()`` is true while the profiler's own hooks run: their reductions are not the model's.
    Tags are kept by ``id`` with a weak reference, so a freed tensor's reused id is never mistaken
    for it, and nothing is attached to the model's tensors.
    """

    def __init__(self, busy: Callable[[], bool]) -> None:
        super().__init__()
        self.busy = busy
        self._tags: dict[int, tuple[weakref.ref, str]] = {}

    def kind(self, value: Any) -> str:
        """The kind of a tensor seen in this batch (real when nothing tagged it)."""
        entry = self._tags.get(id(value))
        if entry is not None and entry[0]() is value:
            return entry[1]
        return REAL

    def mark(self, value: Any, kind: str) -> None:
        """Tag a tensor (or every tensor of a tuple/list output) as ``kind``."""
        for t in (value,) if isinstance(value, torch.Tensor) else tree_flatten(value)[0]:
            if isinstance(t, torch.Tensor):
                if kind == REAL:
                    self._tags.pop(id(t), None)
                else:
                    self._tags[id(t)] = (weakref.ref(t), kind)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.busy():
            return out
        op = _OPS.get(func)
        if op is None:
            op = _OPS[func] = op_name(func)
        rule = PROPAGATION.get(op)
        if rule is None:
            if isinstance(out, torch.Tensor):
                self._tags.pop(id(out), None)  # real; also clears a tensor modified in place
            elif isinstance(out, (tuple, list)):
                self.mark(out, REAL)
            return out
        kinds = [self.kind(t) for t in _tensors(args, kwargs)]
        # Python-number operands matter to arithmetic only (x * 0.125 is real, x + x is a count);
        # the ints of a reshape or a sum's dim do not.
        scalars = [v for v in args if isinstance(v, (int, float))] if op in _ARITHMETIC else []
        self.mark(out, rule(kinds, scalars))
        return out
