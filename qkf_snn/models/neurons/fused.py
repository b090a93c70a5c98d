"""Fused multi-step backend: the whole T loop as one ``torch.autograd.Function``.

The reference backend calls snnTorch's ``Leaky.forward`` once per step: about a dozen tensor ops per
step, each recorded by autograd, whose backward replays as many nodes again, and every intermediate
is a fresh full-size tensor. Here one autograd node covers all T steps:

* forward: the same float32 arithmetic, four in-place / ``out=`` ops per step (zero reset) on
  step-sized scratch buffers; the input is read raw (any float dtype), upcast and scaled, and spikes
  are written in the input's dtype, so the only full-size allocations are the spikes and membranes;
* backward: one reverse pass: the surrogate derivative in closed form with snnTorch's own
  expressions (so per element it is bit-identical to snnTorch's), one ``addcmul_`` per step for the
  recurrence, the input scale folded in; the only full-size allocation is dL/dX itself;
* saved for backward: only the pre-reset membrane U (float32, 4 bytes per neuron-step: the surrogate
  needs it exactly); the detached reset masks R[t+1] = 1[U[t] > θ'] are re-derived from it
  bit-exactly, so no spike copy is kept and the returned spikes stay free to be modified in place.

Element-wise work that does not depend on the recurrence runs once per chunk of steps (see
``CHUNK_ELEMENTS``), the recurrence once per step.

Forward semantics, per step, exactly as snnTorch evaluates them (no reassociation, no FMA):

    R[t] = 1[U[t-1] - θ' > 0]                  (U[-1] = 0; detached)
    zero:     U[t] = b · ((1 - R[t]) · U[t-1]) + X[t]
    subtract: U[t] = (b · U[t-1] + X[t]) - R[t] · θ'
    none:     U[t] = b · U[t-1] + X[t]
    S[t] = 1[U[t] - θ' > 0]                   (b = clamp(β, 0, 1))

so spikes and membranes equal the reference bit for bit (``x - θ' > 0`` and ``x > θ'`` agree for every
float32, IEEE subtraction being exact in sign; ``1 - R`` is computed as ``1[U <= θ']``, the same
0/1). Gradients match the reference's autograd up to float summation order. Pure PyTorch, so it runs
on any device; ``auto`` prefers it on CPU.

The SpikingJelly form of LIF (``sj_forward`` / ``sj_backward``) follows SpikingJelly's expression:

    H[t] = V[t-1] + (X[t] - V[t-1]) / τ          (decay_input; else (V[t-1] - V[t-1] / τ) + X[t])
    S[t] = 1[H[t] - θ' > 0]
    zero:     V[t] = 1[H[t] <= θ'] · H[t]        (SpikingJelly's S·0 + (1 - S)·H, the same value)
    subtract: V[t] = H[t] - S[t] · θ              (θ = the nominal float32 threshold)
    none:     V[t] = H[t]                        (V[-1] = 0)

five ops per step instead of four; the backward is dL/dX[t] = dL/dH[t] / τ (decay_input) and
dL/dV[t-1] = dL/dH[t] - dL/dH[t] / τ, as autograd evaluates the reference expression.
"""

from __future__ import annotations

import snntorch as snn
import torch

from qkf_snn.models.neurons.surrogate import SurrogateSpec

ResetName = str  # "zero" | "subtract" | "none"


# --- what the fused backend can run ------------------------------------------------------------------
def leaky_dynamics(neuron: torch.nn.Module) -> bool:
    """True when ``neuron`` says it integrates with snnTorch's plain leaky update (its ``leaky``
    capability: not QIF's quadratic one, not a unit that does not spike), with a scalar β, no
    learnable threshold, no quantisation, no inhibition and a registered surrogate. What a backend can
    do with the surrogate is its own check (``supports_fused``, ``supports_triton``)."""
    return (
        isinstance(neuron, snn.Leaky)
        and getattr(neuron, "leaky", False)
        and getattr(neuron, "reset_name", None) in ("zero", "subtract", "none")
        and getattr(neuron, "surrogate", None) is not None
        and neuron.surrogate.entry is not None
        and neuron.beta.numel() == 1
        and not neuron.threshold.requires_grad
        and not neuron.state_quant
        and not neuron.inhibition
        and bool(neuron.reset_delay)
    )


def supports_fused(neuron: torch.nn.Module, x: torch.Tensor) -> bool:
    """Float input, leaky dynamics and a surrogate whose table entry has a torch backward."""
    return x.is_floating_point() and leaky_dynamics(neuron) and neuron.surrogate.entry.grad is not None


def is_spikingjelly_form(neuron: torch.nn.Module) -> bool:
    return getattr(neuron, "form", "snntorch") == "spikingjelly"


# --- forward and backward ------------------------------------------------------------------------------
# Steps are processed in chunks of about CHUNK_ELEMENTS values: the element-wise work (input scale,
# spikes, surrogate, reset masks) runs once per chunk, only the recurrence itself once per step. Small
# layers get one chunk (few op dispatches), large ones one step per chunk (a cache-resident working
# set and no large scratch buffers, whose fresh pages would cost more than the arithmetic).
CHUNK_ELEMENTS = 2**18


def _chunk(T: int, step_numel: int) -> int:
    return max(1, min(T, CHUNK_ELEMENTS // max(step_numel, 1)))


def lif_forward(
    x: torch.Tensor,
    b: torch.Tensor,
    theta: float,
    scale: float,
    reset: ResetName,
    spike_dtype: torch.dtype,
    keep_mem: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Spikes ``[T, ...]`` (0/1 in ``spike_dtype``) and float32 pre-reset membranes (``None`` unless
    ``keep_mem``) for the raw input ``x``; the membrane sees ``float32(x) · scale``."""
    T, step = x.shape[0], x.shape[1:]
    chunk = _chunk(T, x[0].numel())
    f32 = dict(dtype=torch.float32, device=x.device)
    spk = torch.empty(x.shape, dtype=spike_dtype, device=x.device)
    u = torch.empty(x.shape, **f32) if keep_mem else torch.empty(chunk, *step, **f32)
    xs = torch.empty(chunk, *step, **f32) if (scale != 1.0 or x.dtype != torch.float32) else None
    prev = torch.empty(step, **f32)  # b · (1 - R[t]) · U[t-1]
    reset_mask = torch.empty(step, **f32) if reset == "subtract" else None  # R[t]
    carry = None if keep_mem else torch.empty(step, **f32)  # U at the end of the last chunk
    last = None
    for t0 in range(0, T, chunk):
        n = min(chunk, T - t0)
        xc = x[t0 : t0 + n]
        if xs is not None:  # float32(x) · s for the whole chunk, as the reference's x.float() * s
            xc = xs[:n].copy_(xc) if x.dtype != torch.float32 else xc
            xc = torch.mul(xc, scale, out=xs[:n]) if scale != 1.0 else xc
        uc = u[t0 : t0 + n] if keep_mem else u[:n]
        for i in range(n):
            cur = uc[i]
            if last is None:
                # b · (1 - R) · 0 = +0 for b in [0, 1]; +0 + X = X (and -0 -> +0), as in the reference.
                torch.add(xc[0], 0.0, out=cur)
                if reset == "subtract" and 0.0 - theta > 0:  # R[0] reads the zero initial membrane
                    cur.sub_(theta)
            else:
                if reset == "zero":
                    torch.le(last, theta, out=prev).mul_(last).mul_(b)  # b·((1 - R)·U): 1 - R = 1[U <= θ']
                else:
                    torch.mul(last, b, out=prev)
                torch.add(prev, xc[i], out=cur)  # b·P + s·X: a multiply, then an add (no FMA)
                if reset_mask is not None:
                    # R·θ' is 0 or θ' exactly, so one multiply-subtract rounds like the reference.
                    cur.sub_(torch.gt(last, theta, out=reset_mask), alpha=theta)
            last = cur
        torch.gt(uc, theta, out=spk[t0 : t0 + n])
        if carry is not None:
            last = carry.copy_(last)  # the chunk buffer is overwritten next
    return spk, (u if keep_mem else None)


def lif_backward(
    grad_spk: torch.Tensor | None,
    grad_mem: torch.Tensor | None,
    u: torch.Tensor,
    b: torch.Tensor,
    theta: float,
    scale: float,
    reset: ResetName,
    surrogate: SurrogateSpec,
    need_beta: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """dL/dX (float32, input scale applied) and dL/db (``None`` unless ``need_beta``), one reverse pass:

    dL/dU[t] = dL/dS[t] · σ'(U[t] - θ') + dL/dU_out[t] + c[t] · dL/dU[t+1],   dL/dX[t] = s · dL/dU[t]
    c[t] = b · (1 - S[t]) for the zero reset (R[t+1] = S[t], detached), b otherwise.
    """
    T, step = u.shape[0], u.shape[1:]
    chunk = _chunk(T, u[0].numel())
    g = torch.empty_like(u)  # dL/dU[t], turned into dL/dX[t] once step t-1 has used it
    v, c = torch.empty(chunk, *step, device=u.device), torch.empty(chunk, *step, device=u.device)
    gs32 = None
    if grad_spk is not None and grad_spk.dtype != torch.float32:
        gs32 = torch.empty(chunk, *step, device=u.device)
    write_surrogate = surrogate.entry.grad
    grad_b = torch.zeros((), device=u.device) if need_beta else None
    t1 = T
    while t1 > 0:
        t0 = max(0, t1 - chunk)
        n, gc, uc = t1 - t0, g[t0:t1], u[t0:t1]
        if grad_spk is None:
            gc.zero_()
        else:
            gs = grad_spk[t0:t1] if gs32 is None else gs32[:n].copy_(grad_spk[t0:t1])
            write_surrogate(gs, torch.sub(uc, theta, out=v[:n]), gc, **surrogate.params)
        if grad_mem is not None:
            gc.add_(grad_mem[t0:t1])
        m = min(t1, T - 1) - t0  # steps of this chunk that have a successor
        if m > 0 and reset == "zero":
            coef = torch.le(u[t0 : t0 + m], theta, out=c[:m]).mul_(b)  # b·(1 - S[t]), exact
            for t in range(t0 + m - 1, t0 - 1, -1):
                g[t].addcmul_(coef[t - t0], g[t + 1])
        elif m > 0:
            for t in range(t0 + m - 1, t0 - 1, -1):
                g[t].addcmul_(g[t + 1], b)
        lo = max(t0, 1)
        if need_beta and lo < t1:
            # dU[t]/db = (1 - R[t]) · U[t-1] (zero reset) or U[t-1]
            before = u[lo - 1 : t1 - 1]
            if reset == "zero":
                before = torch.le(before, theta, out=c[: t1 - lo]).mul_(before)
            grad_b += torch.dot(g[lo:t1].reshape(-1), before.reshape(-1))
        if scale != 1.0:
            g[t0 + 1 : t1 + 1].mul_(scale)  # every step after t0 has now been used by its predecessor
        t1 = t0
    if scale != 1.0:
        g[0].mul_(scale)
    return g, (None if grad_b is None else grad_b.reshape(b.shape))


def sj_forward(
    x: torch.Tensor,
    tau: torch.Tensor,
    theta: float,
    reset_theta: float,
    reset: ResetName,
    decay_input: bool,
    spike_dtype: torch.dtype,
    keep_mem: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SpikingJelly form: spikes ``[T, ...]`` in ``spike_dtype`` and float32 pre-reset membranes H
    (``None`` unless ``keep_mem``) for the raw input ``x``. ``tau`` is a float32 0-dim tensor on x's
    device (IEEE division on every device), ``theta`` = θ', ``reset_theta`` = θ."""
    T, step = x.shape[0], x.shape[1:]
    chunk = _chunk(T, x[0].numel())
    f32 = dict(dtype=torch.float32, device=x.device)
    spk = torch.empty(x.shape, dtype=spike_dtype, device=x.device)
    h = torch.empty(x.shape, **f32) if keep_mem else torch.empty(chunk, *step, **f32)
    xs = torch.empty(chunk, *step, **f32) if x.dtype != torch.float32 else None
    v = torch.zeros(step, **f32)  # V[t-1], after the reset
    fired = torch.empty(step, **f32) if reset == "subtract" else None
    for t0 in range(0, T, chunk):
        n = min(chunk, T - t0)
        xc = x[t0 : t0 + n] if xs is None else xs[:n].copy_(x[t0 : t0 + n])
        hc = h[t0 : t0 + n] if keep_mem else h[:n]
        for i in range(n):
            cur = hc[i]
            # Built in place in H[t] (IEEE addition commutes exactly, so q + V is V + q).
            if decay_input:
                torch.sub(xc[i], v, out=cur).div_(tau).add_(v)  # V + (X - V)/τ
            else:
                torch.sub(v, torch.div(v, tau, out=cur), out=cur).add_(xc[i])  # (V - V/τ) + X
            if reset == "zero":
                torch.le(cur, theta, out=v).mul_(cur)
            elif reset == "subtract":
                # S·θ is 0 or θ exactly, so the multiply-subtract rounds once, like H - S·θ.
                torch.sub(cur, torch.gt(cur, theta, out=fired), alpha=reset_theta, out=v)
            else:
                v.copy_(cur)
        torch.gt(hc, theta, out=spk[t0 : t0 + n])
    return spk, (h if keep_mem else None)


def sj_backward(
    grad_spk: torch.Tensor | None,
    grad_mem: torch.Tensor | None,
    h: torch.Tensor,
    tau: torch.Tensor,
    theta: float,
    reset: ResetName,
    decay_input: bool,
    surrogate: SurrogateSpec,
) -> torch.Tensor:
    """dL/dX (float32) for the SpikingJelly form, one reverse pass:

    dL/dH[t] = dL/dS[t] · σ'(H[t] - θ') + dL/dH_out[t] + k[t] · (dL/dH[t+1] - dL/dH[t+1] / τ)
    k[t] = 1 - S[t] for the zero reset (detached), 1 otherwise;  dL/dX[t] = dL/dH[t] (/ τ).
    """
    T, step = h.shape[0], h.shape[1:]
    chunk = _chunk(T, h[0].numel())
    g = torch.empty_like(h)  # dL/dH[t], turned into dL/dX[t] once step t-1 has used it
    v, c = torch.empty(chunk, *step, device=h.device), torch.empty(chunk, *step, device=h.device)
    carry = v[0]  # v is free once the chunk's surrogate is written
    gs32 = None
    if grad_spk is not None and grad_spk.dtype != torch.float32:
        gs32 = torch.empty(chunk, *step, device=h.device)
    write_surrogate = surrogate.entry.grad
    t1 = T
    while t1 > 0:
        t0 = max(0, t1 - chunk)
        n, gc, hc = t1 - t0, g[t0:t1], h[t0:t1]
        if grad_spk is None:
            gc.zero_()
        else:
            gs = grad_spk[t0:t1] if gs32 is None else gs32[:n].copy_(grad_spk[t0:t1])
            write_surrogate(gs, torch.sub(hc, theta, out=v[:n]), gc, **surrogate.params)
        if grad_mem is not None:
            gc.add_(grad_mem[t0:t1])
        m = min(t1, T - 1) - t0  # steps of this chunk that have a successor
        keep = torch.le(h[t0 : t0 + m], theta, out=c[:m]) if (m > 0 and reset == "zero") else None
        for t in range(t0 + m - 1, t0 - 1, -1):
            # dL/dV[t] = g[t+1] - g[t+1] / τ: autograd's g + (-g / τ) through V + (X - V) / τ
            torch.sub(g[t + 1], torch.div(g[t + 1], tau, out=carry), out=carry)
            if keep is None:
                g[t].add_(carry)
            else:
                g[t].addcmul_(keep[t - t0], carry)  # k·carry is carry or 0 exactly
        if decay_input:
            g[t0 + 1 : t1 + 1].div_(tau)  # every step after t0 has now been used by its predecessor
        t1 = t0
    if decay_input:
        g[0].div_(tau)
    return g


class FusedSpikingJelly(torch.autograd.Function):
    """``x -> (spikes, membranes H)`` over all T steps for the SpikingJelly form; one autograd node."""

    @staticmethod
    def forward(ctx, x, tau, theta, reset_theta, reset, decay_input, surrogate, spike_dtype):  # type: ignore[override]
        spk, h = sj_forward(x, tau, theta, reset_theta, reset, decay_input, spike_dtype)
        ctx.save_for_backward(h, tau)
        ctx.set_materialize_grads(False)
        ctx.theta, ctx.reset, ctx.decay_input, ctx.surrogate = theta, reset, decay_input, surrogate
        ctx.x_dtype = x.dtype
        return spk, h

    @staticmethod
    def backward(ctx, grad_spk, grad_mem):  # type: ignore[override]
        h, tau = ctx.saved_tensors
        gx = sj_backward(grad_spk, grad_mem, h, tau, ctx.theta, ctx.reset, ctx.decay_input, ctx.surrogate)
        return gx.to(ctx.x_dtype), None, None, None, None, None, None, None


def run_fused_spikingjelly(
    neuron: torch.nn.Module, x: torch.Tensor, record_mem: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    tau = torch.tensor(neuron.tau, dtype=torch.float32, device=x.device)
    args = (
        float(neuron.threshold),
        neuron.reset_threshold(),
        neuron.reset_name,
        neuron.decay_input,
    )
    if torch.is_grad_enabled() and x.requires_grad:
        spk, h = FusedSpikingJelly.apply(x, tau, *args, neuron.surrogate, x.dtype)
    else:
        spk, h = sj_forward(x, tau, *args, x.dtype, keep_mem=record_mem)
    return spk, (h if record_mem else None)


class FusedLeaky(torch.autograd.Function):
    """``(x, b) -> (spikes, membranes)`` over all T steps; one autograd node."""

    @staticmethod
    def forward(ctx, x, b, theta, scale, reset, surrogate, spike_dtype):  # type: ignore[override]
        spk, u = lif_forward(x, b.float(), theta, scale, reset, spike_dtype)
        ctx.save_for_backward(u, b)
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None, not a zero tensor
        ctx.theta, ctx.scale, ctx.reset, ctx.surrogate, ctx.x_dtype = theta, scale, reset, surrogate, x.dtype
        return spk, u

    @staticmethod
    def backward(ctx, grad_spk, grad_mem):  # type: ignore[override]
        u, b = ctx.saved_tensors
        need_beta = ctx.needs_input_grad[1]
        gx, gb = lif_backward(
            grad_spk, grad_mem, u, b.float(), ctx.theta, ctx.scale, ctx.reset, ctx.surrogate, need_beta
        )
        gx = gx.to(ctx.x_dtype) if ctx.needs_input_grad[0] else None
        return gx, (None if gb is None else gb.to(b.dtype)), None, None, None, None, None


def run_fused(
    neuron: torch.nn.Module, x: torch.Tensor, record_mem: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Backend entry point (``raw_input``): ``x`` as the layer received it; spikes in its dtype."""
    if is_spikingjelly_form(neuron):
        return run_fused_spikingjelly(neuron, x, record_mem)
    spike_dtype = x.dtype
    x, scale = neuron.split_input_scale(x)
    b = neuron.beta.clamp(0, 1)  # autograd applies the clamp's gradient mask for PLIF
    theta = float(neuron.threshold)
    if torch.is_grad_enabled() and (x.requires_grad or b.requires_grad):
        spk, u = FusedLeaky.apply(x, b, theta, scale, neuron.reset_name, neuron.surrogate, spike_dtype)
    else:
        spk, u = lif_forward(x, b.float(), theta, scale, neuron.reset_name, spike_dtype, keep_mem=record_mem)
    return spk, (u if record_mem else None)
