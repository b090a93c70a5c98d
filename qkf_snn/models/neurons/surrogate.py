"""Surrogate gradients: one table, one entry per surrogate, read by every backend.

Every surrogate's forward pass is snnTorch's Heaviside ``(x > 0)``; only the backward differs. An
entry of :data:`SURROGATES` holds all there is to know about one surrogate:

* ``factory``: snnTorch's own spike-function factory (the reference backend runs it), or for
  ``sigmoid`` the same function with its overflow fixed;
* ``defaults``: our default keyword arguments for it (also the only parameters it accepts);
* ``grad``: its backward in closed form on torch tensors, for the fused backend (``None``: the fused
  backend declines and ``auto`` falls back to the reference);
* ``triton_id`` / ``triton_params``: the branch of the Triton kernel's ``_surrogate`` and the two
  constants it reads (``None``: no kernel; the Triton backend declines, ``auto`` falls back).

Adding a surrogate is one entry here (plus, for a Triton kernel, its branch in ``triton_lif.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from snntorch import surrogate as snn_surrogate

from qkf_snn.errors import UserError

SpikeFn = Callable[[torch.Tensor], torch.Tensor]
# (grad, v, out, **params): writes grad · dS/dV at v = U - θ' into ``out``; ``v`` is scratch it may
# overwrite (owned by the caller), so no temporaries are allocated.
GradFn = Callable[..., None]


# --- closed-form backwards: snnTorch's expressions, operation for operation -----------------------------
# Evaluation order and constants are snnTorch's (x · c for c · x is exact, ``c / t`` is PyTorch's
# ``t.reciprocal() * c``), so every element equals snnTorch's gradient bit for bit.
# snnTorch 1.0.0's sigmoid backward overflows: exp(-slope·v) is inf once -slope·v > ln(max) (88.7 in
# float32, 11.1 in float16) and inf / inf is NaN (snnTorch issue #427; fixed on its master by PR #433,
# not released). From -slope·v > ln(max) / 2 the denominator's square already overflows and the
# expression is exactly ±0, so capping the exponent just above ln(max) / 2 keeps every element where
# snnTorch is finite bit for bit (the sign of zero included) and gives that ±0 where it is NaN. A
# budgeted QKFormer run hit it: membranes 23 below θ with slope 4.
def sigmoid_exponent_cap(dtype: torch.dtype) -> float:
    """The largest exponent the sigmoid backward evaluates in ``dtype``: exp(cap) is finite, its
    square is not."""
    return math.log(torch.finfo(dtype).max) / 2 + 0.5


def _sigmoid(grad: torch.Tensor, v: torch.Tensor, out: torch.Tensor, *, slope: float) -> None:
    # grad * slope * exp(-slope * v) / ((exp(-slope * v) + 1) ** 2), the exponent capped (see above)
    e = v.mul_(-slope).clamp_(max=sigmoid_exponent_cap(v.dtype)).exp_()
    torch.mul(grad, slope, out=out).mul_(e)
    out.div_(e.add_(1).pow_(2))


def _atan(grad: torch.Tensor, v: torch.Tensor, out: torch.Tensor, *, alpha: float) -> None:
    # alpha / 2 / (1 + (pi / 2 * alpha * v) ** 2) * grad
    v.mul_(torch.pi / 2 * alpha).pow_(2).add_(1).reciprocal_().mul_(alpha / 2)
    torch.mul(v, grad, out=out)


def _fast_sigmoid(grad: torch.Tensor, v: torch.Tensor, out: torch.Tensor, *, slope: float) -> None:
    # grad / (slope * |v| + 1) ** 2
    torch.div(grad, v.abs_().mul_(slope).add_(1.0).pow_(2), out=out)


def _triangular(grad: torch.Tensor, v: torch.Tensor, out: torch.Tensor, *, threshold: float) -> None:
    # grad * threshold, negated where v >= 0 (a multiply by ±1 is exact)
    sign = v.ge_(0).mul_(-2.0).add_(1.0)
    torch.mul(grad, threshold, out=out).mul_(sign)


def _straight_through(grad: torch.Tensor, v: torch.Tensor, out: torch.Tensor) -> None:
    out.copy_(grad)


def _spike_rate_escape(
    grad: torch.Tensor, v: torch.Tensor, out: torch.Tensor, *, beta: float, slope: float
) -> None:
    # grad * slope * exp(-beta * |v - 1|)
    e = v.sub_(1).abs_().mul_(-beta).exp_()
    torch.mul(grad, slope, out=out).mul_(e)


class _Sigmoid(torch.autograd.Function):
    """snnTorch's ``surrogate.Sigmoid`` (forward ``(x > 0).float()``), with the overflow-safe backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x > 0).float()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        # snnTorch's expression as it writes it (out of place: bit for bit in every dtype), capped
        (x,) = ctx.saved_tensors
        e = torch.exp((-ctx.slope * x).clamp_(max=sigmoid_exponent_cap(x.dtype)))
        return grad * ctx.slope * e / ((e + 1) ** 2), None


def sigmoid(slope: float = 25.0) -> SpikeFn:
    """``snntorch.surrogate.sigmoid(slope)`` without its NaN gradients (see ``_sigmoid``)."""

    def inner(x: torch.Tensor) -> torch.Tensor:
        return _Sigmoid.apply(x, slope)

    return inner


@dataclass(frozen=True)
class Surrogate:
    """One surrogate: its snnTorch factory, our defaults, its torch backward and its Triton kernel id."""

    factory: Callable[..., SpikeFn]
    defaults: dict[str, float] = field(default_factory=dict)
    grad: GradFn | None = None
    triton_id: int | None = None
    # (p0, p1) the kernel reads, from the spec's parameters (see triton_lif._surrogate)
    triton_params: Callable[[dict[str, float]], tuple[float, float]] = lambda p: (0.0, 0.0)


# sigmoid's slope 4 is SpikingJelly's Sigmoid(alpha=4), the surrogate the official QKFormer trained
# with; the others keep snnTorch's defaults.
SURROGATES: dict[str, Surrogate] = {
    "sigmoid": Surrogate(sigmoid, {"slope": 4.0}, _sigmoid, 0, lambda p: (p["slope"], 0.0)),
    "atan": Surrogate(
        snn_surrogate.atan, {"alpha": 2.0}, _atan, 1, lambda p: (p["alpha"] / 2, math.pi / 2 * p["alpha"])
    ),
    "fast_sigmoid": Surrogate(
        snn_surrogate.fast_sigmoid, {"slope": 25.0}, _fast_sigmoid, 2, lambda p: (p["slope"], 0.0)
    ),
    "triangular": Surrogate(
        snn_surrogate.triangular, {"threshold": 1.0}, _triangular, 3, lambda p: (p["threshold"], 0.0)
    ),
    "straight_through": Surrogate(snn_surrogate.straight_through_estimator, {}, _straight_through, 4),
    "spike_rate_escape": Surrogate(
        snn_surrogate.spike_rate_escape,
        {"beta": 1.0, "slope": 25.0},
        _spike_rate_escape,
        5,
        lambda p: (p["slope"], p["beta"]),
    ),
}
ALIASES: dict[str, str] = {"soft_sign": "fast_sigmoid", "ste": "straight_through"}


def surrogate_names() -> tuple[str, ...]:
    """Every name ``surrogate_spec`` accepts: the table's entries, then the aliases."""
    return (*SURROGATES, *ALIASES)


@dataclass(frozen=True)
class SurrogateSpec:
    """A named surrogate and the keyword arguments of its snnTorch factory."""

    name: str
    params: dict[str, float] = field(default_factory=dict)

    @property
    def entry(self) -> Surrogate | None:
        """Its table entry (None once unregistered)."""
        return SURROGATES.get(self.name)

    def build(self) -> SpikeFn:
        """The snnTorch spike function: Heaviside forward, surrogate backward."""
        return SURROGATES[self.name].factory(**self.params)


def surrogate_spec(name: str, **params: float) -> SurrogateSpec:
    """Resolve a surrogate name (aliases included) and merge ``params`` over our defaults."""
    canonical = ALIASES.get(name, name)
    if canonical not in SURROGATES:
        raise UserError(f"unknown surrogate {name!r}; choose one of {', '.join(surrogate_names())}")
    defaults = SURROGATES[canonical].defaults
    unknown = set(params) - set(defaults)
    if unknown:
        raise UserError(
            f"surrogate {name!r} takes {sorted(defaults) or 'no parameters'}, not {sorted(unknown)}"
        )
    return SurrogateSpec(canonical, {**defaults, **params})


def surrogate_grad(spec: SurrogateSpec, grad: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``grad · dS/dV`` at ``v = U - θ'`` for the surrogate ``spec`` (snnTorch's formula)."""
    out = torch.empty_like(v)
    SURROGATES[spec.name].grad(grad, v.clone(), out, **spec.params)
    return out
