"""Multi-step backends: how a neuron runs over the time axis.

A backend is a function ``(neuron, x[T, ...], record_mem) -> (spikes[T, ...], mem[T, ...] | None)``
that starts from zero state. ``reference`` loops snnTorch's own single-step ``forward``; it defines
the semantics every other backend must match bit for bit (spikes and membranes, float32).
``auto`` takes the first backend in ``AUTO_ORDER`` whose ``supports`` accepts the neuron and input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import snntorch as snn
import torch

from qkf_snn.errors import UserError

BackendFn = Callable[[torch.nn.Module, torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class Backend:
    name: str
    run: BackendFn
    supports: Callable[[torch.nn.Module, torch.Tensor], bool]


BACKENDS: dict[str, Backend] = {}
# Preference for backend="auto"; faster backends insert themselves in front of "reference".
AUTO_ORDER: list[str] = ["reference"]


def register_backend(
    name: str,
    run: BackendFn,
    supports: Callable[[torch.nn.Module, torch.Tensor], bool] = lambda n, x: True,
    *,
    auto_rank: int | None = None,
) -> None:
    """Add a backend; ``auto_rank`` places it in the automatic preference order (0 = first)."""
    BACKENDS[name] = Backend(name, run, supports)
    if auto_rank is not None and name not in AUTO_ORDER:
        AUTO_ORDER.insert(auto_rank, name)


def resolve_backend(name: str, neuron: torch.nn.Module, x: torch.Tensor) -> Backend:
    """The backend to run: ``name`` itself, or for ``auto`` the first that supports this call."""
    if name == "auto":
        for candidate in AUTO_ORDER:
            backend = BACKENDS[candidate]
            if backend.supports(neuron, x):
                return backend
        return BACKENDS["reference"]
    if name not in BACKENDS:
        raise UserError(f"unknown neuron backend {name!r}; choose auto or one of {', '.join(BACKENDS)}")
    backend = BACKENDS[name]
    if not backend.supports(neuron, x):
        raise UserError(
            f"neuron backend {name!r} cannot run {type(neuron).__name__} on {x.device.type} "
            f"with dtype {x.dtype}"
        )
    return backend


def run_reference(
    neuron: torch.nn.Module, x: torch.Tensor, record_mem: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Plain snnTorch, one ``Leaky.forward`` call per time step, state passed explicitly."""
    mem = torch.zeros_like(x[0])
    spikes, mems = [], []
    for t in range(x.shape[0]):
        spk, mem = snn.Leaky.forward(neuron, x[t], mem)
        spikes.append(spk)
        if record_mem:
            mems.append(mem)
    # snnTorch keeps the last state on the module; drop it so no state (or autograd graph)
    # survives the call and the module stays deep-copyable.
    neuron.mem = torch.zeros(0, device=x.device)
    neuron.reset = None
    return torch.stack(spikes), (torch.stack(mems) if record_mem else None)


register_backend("reference", run_reference)
