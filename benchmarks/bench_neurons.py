"""One LIF layer, forward + backward, for T = 4, 8, 16: (a) plain snnTorch step loop, (b) our
backend (``auto``: fused on CPU, Triton on CUDA), (c) SpikingJelly 2.0's ``LIFNode`` (its best
backend for the device: torch on CPU, its CUDA/Triton kernels on GPU).

The layer is the official QKFormer neuron (τ = 2, θ = 1 fired on >=, hard reset to 0, detached reset,
sigmoid surrogate slope 4; (b) in SpikingJelly's expression, (a) in snnTorch's β-form) on a
[T, B, 64, 32, 32] input of N(0, 1) values (a BatchNorm output); the
upstream gradient is N(0, 1). Reported per variant: time per step, samples/s (a sample = one
64×32×32 map over T steps), ratios to (a) and (c), peak memory per sample, and *equivalent bytes per
neuron-step* = time × device copy bandwidth / neuron-steps: the traffic a bandwidth-bound kernel could
have moved in that time (floor ≈ 10 bytes in bf16: read X, write S, read dL/dS, read state, write dL/dX).

Run: ``qkf bench lif`` (or ``python benchmarks/bench_neurons.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from bench_common import (
    environment,
    fmt_ratio,
    interleaved_times,
    markdown_table,
    peak_memory,
    pick_device,
    spikingjelly_like,
    stream_bandwidth,
)
from torch import nn

from qkf_snn.models.neurons import make_neuron
from qkf_snn.models.neurons.backends import resolve_backend

VARIANTS: dict[str, str] = {
    "snntorch": "(a) snnTorch step loop",
    "ours": "(b) qkf backend",
    "spikingjelly": "(c) SpikingJelly 2.0",
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def lif_layer(variant: str) -> nn.Module:
    if variant == "snntorch":
        return make_neuron("lif", tau=2.0, form="snntorch", backend="reference")  # snnTorch's Leaky
    if variant == "ours":
        return make_neuron("lif", tau=2.0, backend="auto")
    if variant == "spikingjelly":
        return spikingjelly_like(make_neuron("lif", tau=2.0))
    raise ValueError(variant)


def _train_step(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> None:
    layer(x).backward(grad)
    x.grad = None


def bench_lif(
    device: str = "auto",
    time_steps: Sequence[int] = (4, 8, 16),
    batch: int | None = None,
    shape: Sequence[int] = (64, 32, 32),
    dtype: str = "auto",
    repeats: int = 7,
    iters: int = 3,
    threads: int = 2,
    variants: Sequence[str] = tuple(VARIANTS),
    command: str | None = None,
) -> dict[str, Any]:
    """Run the LIF-layer benchmark; returns ``{"environment", "settings", "bandwidth", "rows"}``."""
    dev = pick_device(device, threads)
    batch = batch or (8 if dev.type == "cpu" else 256)
    dtype = dtype if dtype != "auto" else ("bfloat16" if dev.type == "cuda" else "float32")
    dt = DTYPES[dtype]
    per_sample = 1
    for d in shape:
        per_sample *= d
    bandwidth = stream_bandwidth(dev)
    rows = []
    for T in time_steps:
        torch.manual_seed(0)
        x = torch.randn(T, batch, *shape, device=dev).to(dt).requires_grad_()
        grad = torch.randn(T, batch, *shape, device=dev).to(dt)
        layers = {v: lif_layer(v).to(dev) for v in variants}
        steps = {v: (lambda m=m, x=x, g=grad: _train_step(m, x, g)) for v, m in layers.items()}
        times = interleaved_times(steps, dev, repeats=repeats, iters=iters)
        memory = {v: peak_memory(step, dev) for v, step in steps.items()}
        with torch.no_grad():
            rate = float(make_neuron("lif", tau=2.0)(x).float().mean())
        chosen = resolve_backend("auto", make_neuron("lif"), x).name
        neuron_steps = batch * per_sample * T
        for v in variants:
            t = times[v]
            rows.append(
                {
                    "variant": v,
                    "label": VARIANTS[v],
                    "backend": chosen if v == "ours" else ("reference" if v == "snntorch" else "auto"),
                    "T": T,
                    "batch": batch,
                    "ms_per_step": t * 1e3,
                    "samples_per_s": batch / t,
                    "ns_per_neuron_step": t / neuron_steps * 1e9,
                    "equiv_bytes_per_neuron_step": t * bandwidth / neuron_steps,
                    "peak_bytes_per_sample": None if memory[v] is None else memory[v] / batch,
                    "firing_rate": rate,
                    "vs_snntorch": times["snntorch"] / t if "snntorch" in times else None,
                    "vs_spikingjelly": times["spikingjelly"] / t if "spikingjelly" in times else None,
                }
            )
    settings = dict(
        time_steps=list(time_steps), batch=batch, sample_shape=list(shape), dtype=dtype,
        repeats=repeats, iters=iters, neuron="LIF tau=2 theta=1 (>=) zero reset, sigmoid(4)",
    )  # fmt: skip
    return {
        "benchmark": "lif",
        "environment": environment(dev, threads, command),
        "settings": settings,
        "bandwidth_GBps": bandwidth / 1e9,
        "rows": rows,
    }


def lif_markdown(result: dict[str, Any]) -> str:
    headers = ["T", "variant", "ms / step", "samples/s", "vs (a)", "vs (c)", "peak MiB / sample",
               "equiv. bytes / neuron-step"]  # fmt: skip
    rows = []
    for r in result["rows"]:
        label = r["label"] + (f" [{r['backend']}]" if r["variant"] == "ours" else "")
        mem = "n/a" if r["peak_bytes_per_sample"] is None else f"{r['peak_bytes_per_sample'] / 2**20:.2f}"
        rows.append([
            str(r["T"]), label, f"{r['ms_per_step']:.2f}", f"{r['samples_per_s']:.1f}",
            fmt_ratio(r["vs_snntorch"]), fmt_ratio(r["vs_spikingjelly"]), mem,
            f"{r['equiv_bytes_per_neuron_step']:.1f}",
        ])  # fmt: skip
    return markdown_table(headers, rows)


if __name__ == "__main__":
    import sys

    from qkf_snn.cli.main import main

    sys.argv = ["qkf", "bench", "lif", *sys.argv[1:]]
    main()
