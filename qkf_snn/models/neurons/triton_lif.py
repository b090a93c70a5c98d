"""Triton backend: the LIF / IF / PLIF recurrence as one forward and one backward kernel.

Each program owns ``BLOCK`` neurons and walks the time axis once, keeping the membrane (forward) or
the membrane gradient (backward) in registers:

* forward reads X[t] in its own dtype (bf16 or float32), applies the input scale s, integrates in
  float32 with exactly the reference's operations (compiled with ``enable_fp_fusion=False``, so
  ``b·P + X`` is a multiply then an add, never an FMA), writes spikes in X's dtype and, when a backward
  or the caller needs them, the float32 pre-reset membranes U;
* backward walks T in reverse reading U and dL/dS, re-derives the detached resets
  R[t] = 1[U[t-1] - θ' > 0] from U bit-exactly (so no spike tensor is stored: 0 bytes instead of
  1 bit), evaluates the surrogate in closed form, and writes dL/dX in X's dtype; PLIF's β gradient is
  reduced per program and the per-program sums added by one ``torch.sum``.

Traffic per neuron-step for a bf16 training step: forward 2 (X) + 2 (S) + 4 (U) bytes, backward
2 (dL/dS) + 4 (U) + 2 (dL/dX) bytes: 16 bytes, against a floor of 10 for kernels that would keep U in
bf16 (which would change the surrogate's value and the reset decisions, so is not done here).

The SpikingJelly form of LIF has its own pair of kernels (``_sj_forward_kernel``,
``_sj_backward_kernel``) with SpikingJelly's expression (see ``fused.py``), dividing by τ with
``tl.div_rn`` (IEEE round-to-nearest, as SpikingJelly's own Triton kernel; Triton's ``/`` is not
correctly rounded).

With ``TRITON_INTERPRET=1`` set before Triton is imported the same kernels run on CPU tensors
(through NumPy): that is how the test suite checks them without a GPU.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from qkf_snn.models.neurons.fused import is_spikingjelly_form, leaky_dynamics
from qkf_snn.models.neurons.surrogate import SurrogateSpec

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
BLOCK = 1024
NUM_WARPS = 4
RESETS = {"zero": 0, "subtract": 1, "none": 2}


def surrogate_constants(spec: SurrogateSpec) -> tuple[int, float, float]:
    """(kernel id, p0, p1): the surrogate's table entry, as the kernel reads it."""
    entry = spec.entry
    p0, p1 = entry.triton_params(spec.params)
    return entry.triton_id, float(p0), float(p1)


@triton.jit
def _surrogate(gs, v, SURROGATE: tl.constexpr, p0, p1):
    """``gs · dS/dV`` at ``v = U - θ'``: snnTorch's formulas (see surrogate.SURROGATES, whose
    ``triton_id`` picks the branch)."""
    if SURROGATE == 0:  # sigmoid, p0 = slope
        e = tl.exp(tl.minimum(-p0 * v, 44.8614))  # surrogate.sigmoid_exponent_cap(float32): no inf / inf
        out = gs * p0 * e / ((e + 1.0) * (e + 1.0))
    elif SURROGATE == 1:  # atan, p0 = alpha / 2, p1 = pi / 2 · alpha
        a = p1 * v
        out = p0 / (1.0 + a * a) * gs
    elif SURROGATE == 2:  # fast sigmoid, p0 = slope
        d = p0 * tl.abs(v) + 1.0
        out = gs / (d * d)
    elif SURROGATE == 3:  # triangular, p0 = threshold
        g = gs * p0
        out = tl.where(v >= 0, -g, g)
    elif SURROGATE == 4:  # straight through
        out = gs
    else:  # spike-rate escape, p0 = slope, p1 = beta
        out = gs * p0 * tl.exp(-p1 * tl.abs(v - 1.0))
    return out


# T is a compile-time constant: models use a handful of values (4, 8, 16), the loop bound is known to
# the compiler, and Triton 3.6's interpreter cannot iterate over a runtime scalar (it calls int() on
# a 1-element array, which NumPy 2 rejects). N keeps Triton's divisibility specialisation, so the
# per-step pointer increments keep vectorised loads.
@triton.jit
def _lif_forward_kernel(
    x_ptr, spk_ptr, u_ptr, b_ptr, theta_ptr, N, scale,
    T: tl.constexpr, RESET: tl.constexpr, SCALE: tl.constexpr, STORE_U: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    b = tl.load(b_ptr).to(tl.float32)
    theta = tl.load(theta_ptr).to(tl.float32)
    u = tl.zeros([BLOCK], dtype=tl.float32)
    r = ((u - theta) > 0).to(tl.float32)  # step 0's reset reads the zero initial membrane
    x_ptrs, spk_ptrs, u_ptrs = x_ptr + offs, spk_ptr + offs, u_ptr + offs
    for _ in range(T):
        x = tl.load(x_ptrs, mask=mask, other=0.0).to(tl.float32)
        if SCALE:
            x = x * scale
        if RESET == 0:  # zero: U = b·((1 - R)·U) + X
            u = b * ((1.0 - r) * u) + x
        elif RESET == 1:  # subtract: U = (b·U + X) - R·θ'
            u = (b * u + x) - r * theta
        else:
            u = b * u + x
        r = ((u - theta) > 0).to(tl.float32)
        tl.store(spk_ptrs, r.to(spk_ptr.dtype.element_ty), mask=mask)
        if STORE_U:
            tl.store(u_ptrs, u, mask=mask)
        x_ptrs += N
        spk_ptrs += N
        u_ptrs += N


@triton.jit
def _lif_backward_kernel(
    gs_ptr, gm_ptr, u_ptr, b_ptr, theta_ptr, gx_ptr, gb_ptr, N, last, scale, p0, p1,
    T: tl.constexpr, RESET: tl.constexpr, SURROGATE: tl.constexpr, SCALE: tl.constexpr,
    HAS_GS: tl.constexpr, HAS_GM: tl.constexpr, BETA_GRAD: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    # ``last`` = (T - 1)·N, computed on the host so that it is 64-bit whenever it needs to be.
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    b = tl.load(b_ptr).to(tl.float32)
    theta = tl.load(theta_ptr).to(tl.float32)
    last = last + offs
    gs_ptrs, gm_ptrs, u_ptrs, gx_ptrs = gs_ptr + last, gm_ptr + last, u_ptr + last, gx_ptr + last
    u = tl.load(u_ptrs, mask=mask, other=0.0)
    carry = tl.zeros([BLOCK], dtype=tl.float32)  # dL/dU[t] arriving from step t+1
    gb = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(T):
        t = T - 1 - i
        u_prev = tl.load(u_ptrs - N, mask=mask & (t > 0), other=0.0)  # U[t-1], 0 before the start
        g = carry
        if HAS_GS:
            gs = tl.load(gs_ptrs, mask=mask, other=0.0).to(tl.float32)
            g = _surrogate(gs, u - theta, SURROGATE, p0, p1) + g
        if HAS_GM:
            g = g + tl.load(gm_ptrs, mask=mask, other=0.0)
        gx = g * scale if SCALE else g
        tl.store(gx_ptrs, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        if RESET == 0:
            keep = 1.0 - ((u_prev - theta) > 0).to(tl.float32)  # 1 - R[t], detached
            carry = g * b * keep
            if BETA_GRAD:
                gb += g * (keep * u_prev)
        else:
            carry = g * b
            if BETA_GRAD:
                gb += g * u_prev
        u = u_prev
        gs_ptrs -= N
        gm_ptrs -= N
        u_ptrs -= N
        gx_ptrs -= N
    if BETA_GRAD:
        tl.store(gb_ptr + pid, tl.sum(gb, axis=0))


@triton.jit
def _sj_forward_kernel(
    x_ptr, spk_ptr, h_ptr, theta_ptr, N, tau, reset_theta,
    T: tl.constexpr, RESET: tl.constexpr, DECAY_INPUT: tl.constexpr, STORE_H: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    theta = tl.load(theta_ptr).to(tl.float32)  # θ'
    v = tl.zeros([BLOCK], dtype=tl.float32)  # V[t-1], after the reset
    x_ptrs, spk_ptrs, h_ptrs = x_ptr + offs, spk_ptr + offs, h_ptr + offs
    for _ in range(T):
        x = tl.load(x_ptrs, mask=mask, other=0.0).to(tl.float32)
        if DECAY_INPUT:
            h = v + tl.div_rn(x - v, tau)
        else:
            h = (v - tl.div_rn(v, tau)) + x
        s = ((h - theta) > 0).to(tl.float32)
        tl.store(spk_ptrs, s.to(spk_ptr.dtype.element_ty), mask=mask)
        if STORE_H:
            tl.store(h_ptrs, h, mask=mask)
        if RESET == 0:  # zero: (1 - S)·H, the value of SpikingJelly's S·0 + (1 - S)·H
            v = (1.0 - s) * h
        elif RESET == 1:  # subtract: H - S·θ
            v = h - s * reset_theta
        else:
            v = h
        x_ptrs += N
        spk_ptrs += N
        h_ptrs += N


@triton.jit
def _sj_backward_kernel(
    gs_ptr, gm_ptr, h_ptr, theta_ptr, gx_ptr, N, last, tau, p0, p1,
    T: tl.constexpr, RESET: tl.constexpr, DECAY_INPUT: tl.constexpr, SURROGATE: tl.constexpr,
    HAS_GS: tl.constexpr, HAS_GM: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    theta = tl.load(theta_ptr).to(tl.float32)  # θ'
    last = last + offs
    gs_ptrs, gm_ptrs, h_ptrs, gx_ptrs = gs_ptr + last, gm_ptr + last, h_ptr + last, gx_ptr + last
    carry = tl.zeros([BLOCK], dtype=tl.float32)  # dL/dV[t] arriving from step t+1
    for _ in range(T):
        h = tl.load(h_ptrs, mask=mask, other=0.0)
        if RESET == 0:
            g = carry * (1.0 - ((h - theta) > 0).to(tl.float32))  # detached reset: 1 - S[t]
        else:
            g = carry
        if HAS_GS:
            gs = tl.load(gs_ptrs, mask=mask, other=0.0).to(tl.float32)
            g = _surrogate(gs, h - theta, SURROGATE, p0, p1) + g
        if HAS_GM:
            g = g + tl.load(gm_ptrs, mask=mask, other=0.0)
        q = tl.div_rn(g, tau)
        gx = q if DECAY_INPUT else g
        tl.store(gx_ptrs, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        carry = g - q  # through V + (X - V)/τ (or V - V/τ + X): dL/dV[t-1] = g - g/τ
        gs_ptrs -= N
        gm_ptrs -= N
        h_ptrs -= N
        gx_ptrs -= N


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)


def lif_forward(
    x: torch.Tensor,
    b: torch.Tensor,
    theta: torch.Tensor,
    scale: float,
    reset: str,
    spike_dtype: torch.dtype,
    store_u: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes ``[T, ...]`` in ``spike_dtype`` and float32 membranes (empty unless ``store_u``)."""
    x = x.contiguous()
    T, N = x.shape[0], x[0].numel()
    spk = torch.empty(x.shape, dtype=spike_dtype, device=x.device)
    u = torch.empty(x.shape if store_u else (0,), dtype=torch.float32, device=x.device)
    if N:
        _lif_forward_kernel[_grid(N)](
            x, spk, u if store_u else spk, b, theta, N, scale,
            T=T, RESET=RESETS[reset], SCALE=scale != 1.0, STORE_U=store_u, BLOCK=BLOCK,
            num_warps=NUM_WARPS, enable_fp_fusion=False,
        )  # fmt: skip
    return spk, u


class TritonLeaky(torch.autograd.Function):
    """``(x, b) -> (spikes, membranes)``; θ', the scale and the surrogate are constants."""

    @staticmethod
    def forward(ctx, x, b, theta, scale, reset, surrogate, spike_dtype):  # type: ignore[override]
        spk, u = lif_forward(x, b, theta, scale, reset, spike_dtype, store_u=True)
        ctx.save_for_backward(u, b, theta)
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None, not a zero tensor
        ctx.scale, ctx.reset, ctx.surrogate, ctx.x_dtype = scale, reset, surrogate, x.dtype
        return spk, u

    @staticmethod
    def backward(ctx, grad_spk, grad_mem):  # type: ignore[override]
        u, b, theta = ctx.saved_tensors
        T, N = u.shape[0], u[0].numel()
        gx = torch.empty(u.shape, dtype=ctx.x_dtype, device=u.device)
        need_beta = ctx.needs_input_grad[1]
        n_programs = _grid(N)[0]
        gb = torch.zeros(max(n_programs, 1), dtype=torch.float32, device=u.device)
        gs = None if grad_spk is None else grad_spk.contiguous()
        gm = None if grad_mem is None else grad_mem.contiguous()
        sid, p0, p1 = surrogate_constants(ctx.surrogate)
        if N:
            _lif_backward_kernel[_grid(N)](
                u if gs is None else gs, u if gm is None else gm, u, b, theta, gx, gb, N, (T - 1) * N,
                ctx.scale, p0, p1, T=T, RESET=RESETS[ctx.reset], SURROGATE=sid, SCALE=ctx.scale != 1.0,
                HAS_GS=gs is not None, HAS_GM=gm is not None, BETA_GRAD=need_beta, BLOCK=BLOCK,
                num_warps=NUM_WARPS, enable_fp_fusion=False,
            )  # fmt: skip
        grad_b = gb.sum().reshape(b.shape) if need_beta else None
        return gx, grad_b, None, None, None, None, None


class TritonSpikingJelly(torch.autograd.Function):
    """``x -> (spikes, membranes H)`` for the SpikingJelly form of LIF."""

    @staticmethod
    def forward(ctx, x, tau, theta, reset_theta, reset, decay_input, surrogate, spike_dtype):  # type: ignore[override]
        spk, h = sj_forward(x, tau, theta, reset_theta, reset, decay_input, spike_dtype, store_h=True)
        ctx.save_for_backward(h, theta)
        ctx.set_materialize_grads(False)
        ctx.tau, ctx.reset, ctx.decay_input = tau, reset, decay_input
        ctx.surrogate, ctx.x_dtype = surrogate, x.dtype
        return spk, h

    @staticmethod
    def backward(ctx, grad_spk, grad_mem):  # type: ignore[override]
        h, theta = ctx.saved_tensors
        T, N = h.shape[0], h[0].numel()
        gx = torch.empty(h.shape, dtype=ctx.x_dtype, device=h.device)
        gs = None if grad_spk is None else grad_spk.contiguous()
        gm = None if grad_mem is None else grad_mem.contiguous()
        sid, p0, p1 = surrogate_constants(ctx.surrogate)
        if N:
            _sj_backward_kernel[_grid(N)](
                h if gs is None else gs, h if gm is None else gm, h, theta, gx, N, (T - 1) * N, ctx.tau,
                p0, p1, T=T, RESET=RESETS[ctx.reset], DECAY_INPUT=ctx.decay_input,
                SURROGATE=sid, HAS_GS=gs is not None, HAS_GM=gm is not None, BLOCK=BLOCK,
                num_warps=NUM_WARPS, enable_fp_fusion=False,
            )  # fmt: skip
        return gx, None, None, None, None, None, None, None


def sj_forward(
    x: torch.Tensor,
    tau: float,
    theta: torch.Tensor,
    reset_theta: float,
    reset: str,
    decay_input: bool,
    spike_dtype: torch.dtype,
    store_h: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SpikingJelly form: spikes in ``spike_dtype`` and float32 membranes H (empty unless ``store_h``).
    ``theta`` is θ' (a float32 tensor on x's device); τ and θ reach the kernel as float32 scalars."""
    x = x.contiguous()
    T, N = x.shape[0], x[0].numel()
    spk = torch.empty(x.shape, dtype=spike_dtype, device=x.device)
    h = torch.empty(x.shape if store_h else (0,), dtype=torch.float32, device=x.device)
    if N:
        _sj_forward_kernel[_grid(N)](
            x, spk, h if store_h else spk, theta, N, tau, reset_theta,
            T=T, RESET=RESETS[reset], DECAY_INPUT=decay_input, STORE_H=store_h, BLOCK=BLOCK,
            num_warps=NUM_WARPS, enable_fp_fusion=False,
        )  # fmt: skip
    return spk, h


def run_triton_spikingjelly(
    neuron: torch.nn.Module, x: torch.Tensor, record_mem: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    theta = neuron.threshold.float()
    args = (neuron.tau, theta, neuron.reset_threshold(), neuron.reset_name, neuron.decay_input)
    if torch.is_grad_enabled() and x.requires_grad:
        spk, h = TritonSpikingJelly.apply(x, *args, neuron.surrogate, x.dtype)
    else:
        spk, h = sj_forward(x, *args, x.dtype, store_h=record_mem)
    return spk, (h if record_mem else None)


def supports_triton(neuron: torch.nn.Module, x: torch.Tensor) -> bool:
    """CUDA tensors (any tensor under the interpreter) in bf16 / fp16 / fp32, leaky dynamics, and a
    surrogate with a kernel (a table entry whose ``triton_id`` is None is declined, not a KeyError)."""
    return (
        (x.is_cuda or INTERPRET)
        and x.dtype in (torch.float32, torch.bfloat16, torch.float16)
        and leaky_dynamics(neuron)
        and neuron.surrogate.entry.triton_id is not None
    )


def run_triton(
    neuron: torch.nn.Module, x: torch.Tensor, record_mem: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Backend entry point. ``x`` is the raw input: the kernel upcasts it and applies the input
    scale itself, and returns spikes in ``x``'s dtype (one read and one write per neuron-step)."""
    if is_spikingjelly_form(neuron):
        return run_triton_spikingjelly(neuron, x, record_mem)
    spike_dtype = x.dtype
    x, scale = neuron.split_input_scale(x)  # PLIF's learned scale stays with autograd (s = 1)
    b = neuron.beta.clamp(0, 1).float()
    theta = neuron.threshold.float()
    if torch.is_grad_enabled() and (x.requires_grad or b.requires_grad):
        spk, u = TritonLeaky.apply(x, b, theta, scale, neuron.reset_name, neuron.surrogate, spike_dtype)
    else:
        spk, u = lif_forward(x, b, theta, scale, neuron.reset_name, spike_dtype, store_u=record_mem)
    return spk, (u if record_mem else None)
