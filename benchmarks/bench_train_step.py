"""The audio-visual QKFormer training step (forward, cross-entropy, backward, AdamW step) with
(a) every neuron on the plain snnTorch step loop, (b) our ``auto`` backend (fused on CPU, Triton on
CUDA), (c) every neuron replaced by its SpikingJelly 2.0 equivalent (``LIFNode``, same τ, θ, reset,
surrogate; SpikingJelly's best backend for the device), and (d) every neuron replaced by a bare
threshold with an identity gradient: not a neuron, but the step time no neuron backend can beat, so
(a)/(d) is the largest speed-up over (a) that faster neurons alone could give.

Same architecture (one model built from seed 0, deep-copied per variant), same random batch
(audio [B, T, 1, 64, 64], video [B, T, 3, 64, 64], uniform [0, 1); labels uniform over classes), same
run, interleaved timing, median over repeats. On CUDA the step runs under bf16 autocast (``--amp``).

Run: ``qkf bench train`` (or ``python benchmarks/bench_train_step.py``).
"""

from __future__ import annotations

import contextlib
import copy
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
    swap_to_spikingjelly,
)
from torch import nn

from qkf_snn.models import count_parameters, create_model
from qkf_snn.models.neurons.backends import resolve_backend, set_backend

VARIANTS: dict[str, str] = {
    "snntorch": "(a) snnTorch step loop",
    "ours": "(b) qkf backend",
    "spikingjelly": "(c) SpikingJelly 2.0",
    "ceiling": "(d) no neuron dynamics (bound)",
}


class _Heaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, theta):  # type: ignore[override]
        return (x > theta).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad, None


class NoDynamics(nn.Module):
    """A threshold with an identity gradient in place of a neuron: two element-wise ops per layer, no
    time loop. The step time with it bounds what any neuron backend can reach (Amdahl)."""

    def __init__(self, theta: float) -> None:
        super().__init__()
        self.theta = theta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Heaviside.apply(x, self.theta)


def remove_dynamics(model: nn.Module) -> int:
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if hasattr(child, "backend") and hasattr(child, "nominal_threshold"):
                setattr(parent, name, NoDynamics(child.nominal_threshold))
                count += 1
    return count


class TrainStep:
    """One optimisation step of ``model`` on a fixed batch."""

    def __init__(self, model: nn.Module, batch: dict[str, torch.Tensor], labels: torch.Tensor, amp: bool):
        self.model, self.batch, self.labels = model.train(), batch, labels
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        device = labels.device.type
        self.autocast = (
            (lambda: torch.autocast(device, dtype=torch.bfloat16)) if amp else contextlib.nullcontext
        )

    def __call__(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.model(self.batch)
            loss = nn.functional.cross_entropy(logits.float(), self.labels)
        loss.backward()
        self.optimizer.step()


def build_variant(base: nn.Module, variant: str) -> nn.Module:
    model = copy.deepcopy(base)
    if variant == "snntorch":
        set_backend(model, "reference")
        for m in model.modules():  # snnTorch's own Leaky update, not SpikingJelly's expression
            if getattr(m, "form", None) == "spikingjelly":
                m.form = "snntorch"
    elif variant == "ours":
        set_backend(model, "auto")
    elif variant == "spikingjelly":
        swap_to_spikingjelly(model)
    elif variant == "ceiling":
        remove_dynamics(model)
    else:
        raise ValueError(variant)
    return model


def bench_train(
    device: str = "auto",
    model_name: str | None = None,
    batch: int | None = None,
    num_classes: int = 6,
    amp: bool | None = None,
    repeats: int = 5,
    iters: int = 2,
    threads: int = 2,
    variants: Sequence[str] = tuple(VARIANTS),
    command: str | None = None,
) -> dict[str, Any]:
    """Run the training-step benchmark; returns ``{"environment", "settings", "rows"}``."""
    dev = pick_device(device, threads)
    model_name = model_name or ("qkf_av_tiny" if dev.type == "cpu" else "qkf_av_small")
    batch = batch or (8 if dev.type == "cpu" else 64)
    amp = (dev.type == "cuda") if amp is None else amp
    torch.manual_seed(0)
    base = create_model(model_name, num_classes=num_classes).to(dev)
    example = base.example_batch(batch)
    inputs = {k: torch.rand(v.shape, device=dev) for k, v in example.items()}
    labels = torch.randint(0, num_classes, (batch,), device=dev)
    steps = {v: TrainStep(build_variant(base, v), inputs, labels, amp) for v in variants}
    times = interleaved_times(steps, dev, repeats=repeats, iters=iters)
    memory = {v: peak_memory(step, dev) for v, step in steps.items()}
    probe = next(m for m in base.modules() if hasattr(m, "backend"))
    probe_input = torch.zeros(2, 1, device=dev, dtype=torch.bfloat16 if amp else torch.float32)
    chosen = resolve_backend("auto", probe, probe_input).name
    time_steps = next(iter(example.values())).shape[1]
    rows = []
    for v in variants:
        t = times[v]
        rows.append(
            {
                "variant": v,
                "label": VARIANTS[v],
                "backend": chosen if v == "ours" else ("reference" if v == "snntorch" else "auto"),
                "ms_per_step": t * 1e3,
                "samples_per_s": batch / t,
                "peak_bytes_per_sample": None if memory[v] is None else memory[v] / batch,
                "vs_snntorch": times["snntorch"] / t if "snntorch" in times else None,
                "vs_spikingjelly": times["spikingjelly"] / t if "spikingjelly" in times else None,
            }
        )
    settings = dict(
        model=model_name, parameters=count_parameters(base), batch=batch, time_steps=int(time_steps),
        amp_bf16=amp, optimizer="AdamW", repeats=repeats, iters=iters,
        neurons=sum(1 for m in base.modules() if hasattr(m, "backend")),
    )  # fmt: skip
    return {"benchmark": "train", "environment": environment(dev, threads, command), "settings": settings,
            "rows": rows}  # fmt: skip


def train_markdown(result: dict[str, Any]) -> str:
    headers = ["variant", "ms / step", "samples/s", "vs (a)", "vs (c)", "peak MiB / sample"]
    rows = []
    for r in result["rows"]:
        label = r["label"] + (f" [{r['backend']}]" if r["variant"] == "ours" else "")
        mem = "n/a" if r["peak_bytes_per_sample"] is None else f"{r['peak_bytes_per_sample'] / 2**20:.1f}"
        rows.append([label, f"{r['ms_per_step']:.1f}", f"{r['samples_per_s']:.2f}",
                     fmt_ratio(r["vs_snntorch"]), fmt_ratio(r["vs_spikingjelly"]), mem])  # fmt: skip
    return markdown_table(headers, rows)


if __name__ == "__main__":
    import sys

    from qkf_snn.cli.main import main

    sys.argv = ["qkf", "bench", "train", *sys.argv[1:]]
    main()
