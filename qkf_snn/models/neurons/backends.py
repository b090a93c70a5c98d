"""Multi-step backends: how a neuron runs over the time axis.

A backend is a function ``(neuron, x[T, ...], record_mem) -> (spikes[T, ...], mem[T, ...] | None)``
that starts from zero state. ``reference`` defines the semantics every other backend must match bit
for bit (spikes and membranes, float32): for the snnTorch form it loops snnTorch's own single-step
``Leaky.forward``, for the SpikingJelly form SpikingJelly's ``LIFNode`` expression (see ``lif.py``).
``auto`` takes the first backend in ``AUTO_ORDER`` whose ``supports`` accepts the neuron and input.

Registered here:

* ``reference``: snnTorch (or SpikingJelly's expression), step by step (every neuron, every device).
* ``fused``: one autograd node over the T loop (``fused.py``; LIF / IF / PLIF, any device).
* ``triton``: one forward and one backward kernel (``triton_lif.py``; LIF / IF / PLIF on CUDA when
  Triton is installed, or on CPU tensors under ``TRITON_INTERPRET=1``).

Both take the raw input (``raw_input=True``): they upcast and scale it themselves, step by step or in
registers, and return spikes in the input's dtype, instead of materialising ``float32(x) · s``.

``auto`` = triton on CUDA, fused elsewhere, reference for neurons neither supports (QIF).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import snntorch as snn
import torch

from qkf_snn.errors import UserError
from qkf_snn.models.neurons.fused import run_fused, supports_fused

BackendFn = Callable[[torch.nn.Module, torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class Backend:
    name: str
    run: BackendFn
    supports: Callable[[torch.nn.Module, torch.Tensor], bool]
    # False: ``run`` gets the float32 input already scaled by the neuron (``scaled_input``) and its
    # spikes are cast back to the input dtype. True: ``run`` gets the raw input and does both itself.
    raw_input: bool = False


BACKENDS: dict[str, Backend] = {}
# Preference for backend="auto"; faster backends insert themselves in front of "reference".
AUTO_ORDER: list[str] = ["reference"]


def register_backend(
    name: str,
    run: BackendFn,
    supports: Callable[[torch.nn.Module, torch.Tensor], bool] = lambda n, x: True,
    *,
    auto_rank: int | None = None,
    raw_input: bool = False,
) -> None:
    """Add a backend; ``auto_rank`` places it in the automatic preference order (0 = first)."""
    BACKENDS[name] = Backend(name, run, supports, raw_input)
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
    check_backend_name(name)
    backend = BACKENDS[name]
    if not backend.supports(neuron, x):
        raise UserError(
            f"neuron backend {name!r} cannot run {type(neuron).__name__} on {x.device.type} "
            f"with dtype {x.dtype}"
        )
    return backend


def run_snntorch_reference(
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


def run_spikingjelly_reference(
    neuron: torch.nn.Module, x: torch.Tensor, record_mem: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SpikingJelly 2.0's ``LIFNode`` step (``_ops/lif``: charge, fire, detached reset), written out
    with the same float32 operations in the same order; the spike goes through the neuron's
    snnTorch surrogate, whose forward is ``H - θ' > 0``, i.e. ``H >= θ`` for ``comparator="ge"``.

    τ is a 0-dim tensor on x's device: dividing by it is IEEE division on CPU and CUDA alike (a
    Python-float divisor would be turned into a multiplication by its reciprocal on CUDA).
    SpikingJelly's ``V - v_reset`` with v_reset = 0 is V itself, so it is left out.
    """
    tau = torch.tensor(neuron.tau, dtype=torch.float32, device=x.device)
    theta = neuron.reset_threshold()
    v = torch.zeros_like(x[0])
    spikes, mems = [], []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau if neuron.decay_input else v - v / tau + x[t]
        spike = neuron.spike_grad(h - neuron.threshold)
        s = spike.detach()  # SpikingJelly's detach_reset=True, as in the official QKFormer
        if neuron.reset_name == "zero":
            v = s * 0.0 + (1.0 - s) * h
        elif neuron.reset_name == "subtract":
            v = h - s * theta
        else:
            v = h
        spikes.append(spike)
        if record_mem:
            mems.append(h)
    return torch.stack(spikes), (torch.stack(mems) if record_mem else None)


# The reference semantics of each neuron form (``MultiStepNeuron.form``).
REFERENCES: dict[str, BackendFn] = {
    "snntorch": run_snntorch_reference,
    "spikingjelly": run_spikingjelly_reference,
}


def run_reference(
    neuron: torch.nn.Module, x: torch.Tensor, record_mem: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reference loop of the neuron's form."""
    return REFERENCES[getattr(neuron, "form", "snntorch")](neuron, x, record_mem)


def set_backend(model: torch.nn.Module, name: str) -> int:
    """Switch every spiking neuron of ``model`` to backend ``name`` (``auto`` included); returns how
    many neurons were switched. Checked against the registry, not against each neuron: a backend that
    cannot run some neuron raises when that neuron runs (``auto`` never does)."""
    check_backend_name(name)
    neurons = [m for m in model.modules() if isinstance(m, snn.Leaky) and hasattr(m, "backend")]
    for neuron in neurons:
        neuron.backend = name
    return len(neurons)


def check_backend_name(name: str) -> None:
    if name != "auto" and name not in BACKENDS:
        raise UserError(f"unknown neuron backend {name!r}; choose auto or one of {', '.join(BACKENDS)}")


# --- the fast backends ----------------------------------------------------------------------------------
def _run_triton(neuron: torch.nn.Module, x: torch.Tensor, record_mem: bool):
    from qkf_snn.models.neurons.triton_lif import run_triton  # Triton is imported on first use only

    return run_triton(neuron, x, record_mem)


def _supports_triton(neuron: torch.nn.Module, x: torch.Tensor) -> bool:
    # Cheap checks first: on CPU (without the interpreter) Triton is never imported.
    if not (x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1") or not _triton_installed():
        return False
    from qkf_snn.models.neurons.triton_lif import supports_triton

    return supports_triton(neuron, x)


@lru_cache(maxsize=1)
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


register_backend("reference", run_reference)
register_backend("fused", run_fused, supports_fused, auto_rank=0, raw_input=True)
register_backend("triton", _run_triton, _supports_triton, auto_rank=0, raw_input=True)
