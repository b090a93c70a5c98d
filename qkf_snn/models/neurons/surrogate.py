"""Surrogate gradients by name, built on snnTorch's own surrogate functions.

Every surrogate's forward pass is snnTorch's Heaviside ``(x > 0)``; only the backward differs. The
table keeps the name, the snnTorch factory and our default parameters in one place, so a fused
backend can look up the same parameters and reproduce the same gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from snntorch import surrogate as snn_surrogate

from qkf_snn.errors import UserError

SpikeFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SurrogateSpec:
    """A named surrogate and the keyword arguments of its snnTorch factory."""

    name: str
    params: dict[str, float] = field(default_factory=dict)

    def build(self) -> SpikeFn:
        """The snnTorch spike function: Heaviside forward, surrogate backward."""
        return _FACTORIES[self.name](**self.params)


# name -> (snnTorch factory, default parameters). sigmoid's slope 4 is SpikingJelly's Sigmoid(alpha=4),
# the surrogate the official QKFormer trained with; the others keep snnTorch's defaults.
_FACTORIES: dict[str, Callable[..., SpikeFn]] = {
    "sigmoid": snn_surrogate.sigmoid,
    "atan": snn_surrogate.atan,
    "fast_sigmoid": snn_surrogate.fast_sigmoid,
    "triangular": snn_surrogate.triangular,
    "straight_through": snn_surrogate.straight_through_estimator,
    "spike_rate_escape": snn_surrogate.spike_rate_escape,
}
_DEFAULTS: dict[str, dict[str, float]] = {
    "sigmoid": {"slope": 4.0},
    "atan": {"alpha": 2.0},
    "fast_sigmoid": {"slope": 25.0},
    "triangular": {"threshold": 1.0},
    "straight_through": {},
    "spike_rate_escape": {"beta": 1.0, "slope": 25.0},
}
_ALIASES = {"soft_sign": "fast_sigmoid", "ste": "straight_through"}

SURROGATES: tuple[str, ...] = tuple(_FACTORIES) + tuple(_ALIASES)


def surrogate_spec(name: str, **params: float) -> SurrogateSpec:
    """Resolve a surrogate name (aliases included) and merge ``params`` over our defaults."""
    canonical = _ALIASES.get(name, name)
    if canonical not in _FACTORIES:
        raise UserError(f"unknown surrogate {name!r}; choose one of {', '.join(SURROGATES)}")
    unknown = set(params) - set(_DEFAULTS[canonical])
    if unknown:
        raise UserError(
            f"surrogate {name!r} takes {sorted(_DEFAULTS[canonical]) or 'no parameters'}, "
            f"not {sorted(unknown)}"
        )
    return SurrogateSpec(canonical, {**_DEFAULTS[canonical], **params})
