"""Run-to-run and machine-to-machine reproducibility of a training run's numbers.

Measured on the demo (2-core x86_64, torch 2.11 CPU): with a fixed thread count, OMP_NUM_THREADS and
background load change nothing, but the number of intra-op threads does (gradients differ in the
last bits with 1, 2 or 3 threads), and so do the CPU code paths that MKL (GEMM) and oneDNN
(convolutions) pick for the host: an AVX-512 host and an AVX2-only host round differently, and a few
epochs later one validation clip flips. ``run.cpu_isa`` pins MKL (conditional numerical
reproducibility, ``MKL_CBWR``) and oneDNN (``ONEDNN_MAX_CPU_ISA``) to one instruction set, and ATen's
own kernels (``ATEN_CPU_CAPABILITY``) with them. The three are read once per process, when the
library first runs, so the pin must come before the process's first tensor operation.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from qkf_snn.errors import UserError

# run.cpu_isa -> the environment that pins each CPU library to that instruction set
CPU_ISA_ENV: dict[str, dict[str, str]] = {
    "avx2": {"MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}
# what torch.backends.cpu.get_cpu_capability() reports once the pin has taken effect
ATEN_CAPABILITY = {"avx2": "AVX2"}


def pin_cpu_isa(isa: str | None) -> None:
    """Pin the CPU libraries' code paths to ``isa`` (None: the host's best). Effective only before the
    process's first tensor operation; :func:`environment` tells whether it took effect."""
    if isa is None:
        return
    if isa not in CPU_ISA_ENV:
        raise UserError(f"run.cpu_isa {isa!r}: choose one of {', '.join(CPU_ISA_ENV)} (or leave it unset)")
    os.environ.update(CPU_ISA_ENV[isa])


def setup(threads: int | None, deterministic: bool, cpu_isa: str | None) -> None:
    """A run's numeric set-up: CPU code paths, intra-op threads, deterministic kernels."""
    pin_cpu_isa(cpu_isa)
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        # CUDA: cuBLAS needs a fixed workspace to be deterministic; read when cuBLAS starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def environment(cpu_isa: str | None = None) -> dict[str, Any]:
    """What decided this process's numerics, as a run records it next to its results."""
    capability = torch.backends.cpu.get_cpu_capability()
    env = {k: os.environ.get(k) for k in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")}
    facts: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cpu_capability": capability,
        **{k: v for k, v in env.items() if v is not None},
    }
    if cpu_isa is not None:
        facts["cpu_isa_pinned"] = capability == ATEN_CAPABILITY[cpu_isa]
    return facts
