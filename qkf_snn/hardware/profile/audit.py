"""Functional-operator audit: which arithmetic runs outside the counted modules.

Forward hooks see modules, not ``x + y`` or ``torch.matmul`` written inside a ``forward``. On one
batch the profiler therefore also runs this TorchFunctionMode, which sees every torch function call
and the module that issued it (not a TorchDispatchMode: entering one imports torch._dynamo, seconds
of start-up for a one-batch check). Operators inside counted modules are covered; pure data
movement is free; arithmetic in a container is either a known functional operation of our blocks
(residual additions, readout averages, the SSA scale) or reported as *unattributed*, by name —
never silently zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from qkf_snn.models.blocks import DownsampleEmbed, QKFormerBlock, SpikingSelfAttention, StemEmbed
from qkf_snn.models.classifier import UniModalClassifier
from qkf_snn.models.fusion import FUSIONS, AVClassifier
from qkf_snn.models.qkformer import QKFormer

# torch functions that move, view, create or describe data without arithmetic.
DATA_MOVEMENT = frozenset(
    """__getitem__ __setitem__ __get__ __len__ __iter__ __contains__ __bool__ __float__ __int__
    __index__ __format__ __repr__ dim size numel shape dtype device is_floating_point is_contiguous
    item tolist type view view_as reshape reshape_as flatten unflatten transpose swapaxes permute
    movedim t unsqueeze squeeze expand expand_as contiguous clone detach requires_grad_ to float
    double half bfloat16 cpu cuda cat concat concatenate stack chunk split unbind select narrow
    repeat tensor as_tensor empty empty_like zeros zeros_like ones ones_like full full_like
    new_zeros new_ones new_empty new_full copy_ zero_ fill_ flip roll""".split()
)

_REFLECTED = {"radd": "add", "iadd": "add", "rsub": "sub", "isub": "sub", "rmul": "mul", "imul": "mul",
              "truediv": "div", "rtruediv": "div", "itruediv": "div", "rdiv": "div",
              "rmatmul": "matmul", "imatmul": "matmul"}  # fmt: skip


def op_name(func) -> str:
    """``Tensor.__radd__``, ``Tensor.add_`` and ``torch.add`` all become ``add``."""
    name = getattr(func, "__name__", str(func))
    if name.startswith("__") and name.endswith("__") and name.strip("_") not in ("get", "getitem", "setitem"):
        name = name.strip("_")
        return _REFLECTED.get(name, name)
    if name.endswith("_") and not name.startswith("_"):
        name = name[:-1]
    return _REFLECTED.get(name, name)


@dataclass(frozen=True)
class FunctionalRule:
    kind: str  # residual | readout | scale | fusion
    note: str


_READOUT = FunctionalRule(
    "readout",
    "token average of the integer stream before the head (foldable into the head weights as ÷N) "
    "and time average of the logits",
)

# (container class, normalised torch function name) -> what that operation is in our blocks.
# Methods such as QKFormer.forward_features run inside the caller's module, hence the classifiers.
FUNCTIONAL_RULES: dict[tuple[type, str], FunctionalRule] = {
    (QKFormerBlock, "add"): FunctionalRule(
        "residual", "residual addition of a spiking branch into the integer stream (x + attn(x), x + mlp(x))"
    ),
    (StemEmbed, "add"): FunctionalRule("residual", "shortcut addition (spikes + spikes)"),
    (DownsampleEmbed, "add"): FunctionalRule(
        "residual", "shortcut addition (spikes + integer-stream shortcut)"
    ),
    (SpikingSelfAttention, "mul"): FunctionalRule(
        "scale", "Q·(KᵀV) × 0.125 before the attention neuron: foldable into its threshold (0 ops)"
    ),
    (QKFormer, "mean"): _READOUT,
    (UniModalClassifier, "mean"): _READOUT,
    (AVClassifier, "mean"): _READOUT,
}


def model_rules(model: nn.Module) -> dict[tuple[type, str], FunctionalRule]:
    """FUNCTIONAL_RULES plus the audit rules of the fusion method of every AV model in ``model``
    (its entry in models.fusion.FUSIONS): a method's operations are expected only in its models."""
    rules = dict(FUNCTIONAL_RULES)
    for module in model.modules():
        if isinstance(module, AVClassifier):
            for key, (kind, note) in FUSIONS[module.fusion].audit.items():
                rules[key] = FunctionalRule(kind, note)
    return rules


def find_rule(
    module: nn.Module, op: str, rules: dict[tuple[type, str], FunctionalRule] = FUNCTIONAL_RULES
) -> FunctionalRule | None:
    for cls in type(module).__mro__:
        rule = rules.get((cls, op))
        if rule is not None:
            return rule
    return None


@dataclass
class AuditEntry:
    name: str
    cls: str
    op: str
    calls: int
    elements: int
    rule: FunctionalRule | None


class FunctionalAudit(TorchFunctionMode):
    """Record arithmetic torch functions by the innermost module that issued them.

    ``covered(module)`` says whether a module's own counting rule accounts for everything inside
    it; ``busy()`` is true while the profiler's own hooks run (their reductions are not the model's).
    """

    def __init__(
        self,
        model: nn.Module,
        names: dict[nn.Module, str],
        covered: Callable[[nn.Module], bool],
        busy: Callable[[], bool],
    ) -> None:
        super().__init__()
        self.model, self.names, self.covered, self.busy = model, names, covered, busy
        self.rules = model_rules(model)
        self.stack: list[nn.Module] = []
        self.covered_depth = 0
        self.entries: dict[tuple[str, str], AuditEntry] = {}
        self._handles: list = []

    def __enter__(self) -> FunctionalAudit:
        for module in self.model.modules():
            self._handles.append(module.register_forward_pre_hook(self._push))
            self._handles.append(module.register_forward_hook(self._pop))
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        try:
            super().__exit__(*exc)
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles.clear()

    def _push(self, module: nn.Module, _inputs) -> None:
        self.stack.append(module)
        self.covered_depth += self.covered(module)

    def _pop(self, module: nn.Module, _inputs, _output) -> None:
        if self.stack and self.stack[-1] is module:
            self.stack.pop()
            self.covered_depth -= self.covered(module)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.covered_depth or not self.stack or self.busy():
            return out
        name = getattr(func, "__name__", "")
        if name in DATA_MOVEMENT:
            return out
        op = op_name(func)
        if op in DATA_MOVEMENT:
            return out
        module = self.stack[-1]
        name = self.names.get(module, type(module).__name__)
        tensors = [t for t in tree_flatten((args, out))[0] if isinstance(t, torch.Tensor)]
        elements = max((t.numel() for t in tensors), default=0)
        entry = self.entries.get((name, op))
        if entry is None:
            entry = AuditEntry(name, type(module).__name__, op, 0, 0, find_rule(module, op, self.rules))
            self.entries[(name, op)] = entry
        entry.calls += 1
        entry.elements += elements
        return out
