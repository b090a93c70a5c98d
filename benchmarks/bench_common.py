"""Shared pieces of the speed benchmarks: environment record, interleaved timing, peak memory, device
bandwidth, and the SpikingJelly stand-in for our neurons.

Protocol (used by ``bench_neurons.py`` and ``bench_train_step.py``): every variant is built from the
same seed and fed the same tensors; variants are timed *interleaved* (a, b, c, a, b, c, ...) so that a
load spike from other processes hits all of them, and the median over repeats is reported.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from qkf_snn.errors import UserError


# --- environment ---------------------------------------------------------------------------------------
def pick_device(device: str, threads: int | None = None) -> torch.device:
    """The device a benchmark runs on; on CPU, ``threads`` (if given) sets PyTorch's intra-op threads."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise UserError(f"--device must be auto, cpu or cuda (got {device!r})")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible to PyTorch on this machine")
    if device == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    return torch.device(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = f"{names[0]} ({len(names)} logical cores visible)" if names else model
    except OSError:
        pass
    return model


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("snntorch", "spikingjelly", "triton"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
    return out


def environment(device: torch.device, threads: int | None, command: str | None = None) -> dict[str, Any]:
    return {
        "device": device_name(device),
        "device_type": device.type,
        "threads": threads if device.type == "cpu" else None,
        "versions": versions(),
        "command": command or " ".join(sys.argv),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --- timing ---------------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_times(
    steps: dict[str, Callable[[], Any]], device: torch.device, *, repeats: int, iters: int, warmup: int = 2
) -> dict[str, float]:
    """Median seconds per call of each step function, timed in interleaved rounds."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            for _ in range(iters):
                step()
            synchronize(device)
            samples[name].append((time.perf_counter() - start) / iters)
    return {name: statistics.median(values) for name, values in samples.items()}


def stream_bandwidth(device: torch.device, mbytes: int = 128, repeats: int = 5) -> float:
    """Bytes per second of a large device-memory copy (read + write): the roofline for LIF kernels."""
    src = torch.empty(mbytes * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    times = []
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        dst.copy_(src)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * src.numel() * 4 / statistics.median(times[1:])


# --- peak memory ------------------------------------------------------------------------------------------
class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")
    ]  # fmt: skip


def _glibc_in_use() -> Callable[[], int] | None:
    """Bytes currently allocated through glibc malloc (heap + mmap), or None off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None

    def in_use() -> int:
        info = libc.mallinfo2()
        return info.uordblks + info.hblkhd

    return in_use


class _PeakAfterEachOp(TorchDispatchMode):
    """Samples allocated bytes after every ATen op (forward and backward): the peak over op boundaries,
    i.e. every live tensor counted, an op's internal scratch space not."""

    def __init__(self, in_use: Callable[[], int]) -> None:
        super().__init__()
        self.in_use, self.peak = in_use, in_use()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, self.in_use())
        return out


def peak_memory(step: Callable[[], Any], device: torch.device) -> int | None:
    """Peak bytes allocated during one call of ``step`` above what was allocated before it.

    CUDA: the caching allocator's peak. CPU: glibc's allocated bytes sampled after every op (None when
    glibc's ``mallinfo2`` is unavailable)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    in_use = _glibc_in_use()
    if in_use is None:
        return None
    base = in_use()
    with _PeakAfterEachOp(in_use) as mode:
        step()
    return mode.peak - base


# --- SpikingJelly neurons in place of ours ------------------------------------------------------------------
class SpikingJellyNeuron(nn.Module):
    """A SpikingJelly 2.0 multi-step node with the same dynamics as one of our neurons; state is reset
    on every call, as ours starts from zero."""

    def __init__(self, node: nn.Module) -> None:
        super().__init__()
        self.node = node

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.node.reset()
        return self.node(x)


def spikingjelly_like(neuron: nn.Module) -> SpikingJellyNeuron:
    """SpikingJelly's ``LIFNode`` (``IFNode`` for β = 1) equivalent to our LIF / IF neuron: τ = 1/(1-β),
    input decay as ours, threshold θ fired on >=, hard reset to 0 or soft reset, detached reset,
    sigmoid surrogate with our slope (SpikingJelly's alpha)."""
    try:
        from spikingjelly.activation_based import neuron as sj_neuron
        from spikingjelly.activation_based import surrogate as sj_surrogate
    except ImportError:  # spikingjelly is a dev dependency
        raise UserError("the SpikingJelly comparison needs spikingjelly (`uv sync` installs it)") from None
    if neuron.comparator != "ge" or neuron.reset_name not in ("zero", "subtract"):
        raise UserError("SpikingJelly has no neuron firing on > or without reset: use comparator ge")
    if neuron.surrogate.name != "sigmoid":
        raise UserError(f"no SpikingJelly surrogate matches {neuron.surrogate.name!r}; use sigmoid")
    beta = float(neuron.beta.detach().clamp(0, 1))
    common = dict(
        v_threshold=neuron.nominal_threshold,
        v_reset=0.0 if neuron.reset_name == "zero" else None,
        surrogate_function=sj_surrogate.Sigmoid(alpha=neuron.surrogate.params["slope"]),
        detach_reset=True,
        step_mode="m",
    )
    if beta == 1.0:
        return SpikingJellyNeuron(sj_neuron.IFNode(**common))
    decay_input = abs(neuron.input_scale - (1.0 - beta)) < 1e-6
    return SpikingJellyNeuron(sj_neuron.LIFNode(tau=1.0 / (1.0 - beta), decay_input=decay_input, **common))


def swap_to_spikingjelly(model: nn.Module) -> int:
    """Replace every one of our spiking neurons in ``model`` by its SpikingJelly equivalent."""
    import snntorch as snn

    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, snn.Leaky) and hasattr(child, "backend"):
                device = child.beta.device
                setattr(parent, name, spikingjelly_like(child).to(device))
                count += 1
    return count


def fmt_ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
