"""Energy-aware training: the profiler's energy models as a differentiable per-sample estimate.

The training layer does not import this one; the caller (``qkf train``, ``qkf sweep``) builds the
loss term with :func:`energy_terms` and hands it to ``training.loop.train``.
"""

from __future__ import annotations

from typing import Any

from qkf_snn.errors import UserError
from qkf_snn.hardware.profile.energy import ENERGY_MODELS


def check_energy_model(name: str, option: str = "energy.model") -> str:
    """``name`` if it is one of the profiler's energy models, else one line naming the choices."""
    if name not in ENERGY_MODELS:
        raise UserError(f"{option} {name!r}: unknown energy model; choose one of {', '.join(ENERGY_MODELS)}")
    return name


def energy_terms(cfg: Any) -> list[Any]:
    """The loss terms ``cfg.energy`` asks for (none when weight is 0 and there is no budget)."""
    check_energy_model(cfg.energy.model)
    if not cfg.energy.active:
        return []
    raise UserError("--energy-weight/--energy-budget: energy-aware training is not wired into the loop yet")
