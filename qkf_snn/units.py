"""Physical quantities typed by users: one parser per unit family, one-line errors naming the option.

Energies are kept in pJ everywhere (the profiler's unit); ``parse_energy("5uJ", "--energy-budget")``
is the only place a typed energy is read.
"""

from __future__ import annotations

import math
import re

from qkf_snn.errors import UserError

# Prefix -> pJ. "u" is accepted for "µ" (the micro sign U+00B5 and the Greek mu U+03BC both occur).
ENERGY_UNITS: dict[str, float] = {"pJ": 1.0, "nJ": 1e3, "uJ": 1e6, "µJ": 1e6, "μJ": 1e6, "mJ": 1e9, "J": 1e12}
_ENERGY = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµμ]+)\s*")


def parse_energy(text: str | float | int, option: str) -> float:
    """``"5uJ"``, ``"500nJ"``, ``"2.5µJ"``, ``"1e6pJ"`` → pJ (a float > 0). A bare number is refused:
    the unit is what makes a budget mean something."""
    match = _ENERGY.fullmatch(str(text))
    units = ", ".join(u for u in ENERGY_UNITS if u not in ("µJ", "μJ"))
    if match is None or match.group(2) not in ENERGY_UNITS:
        raise UserError(f"{option} {text!r}: not an energy; write a number and a unit ({units}), e.g. 5uJ")
    value = float(match.group(1)) * ENERGY_UNITS[match.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{option} {text!r}: must be a positive, finite energy")
    return value


def format_energy(pj: float) -> str:
    """pJ as a short human string in the largest unit below it (``5e6`` → ``"5 µJ"``)."""
    for unit, scale in (("J", 1e12), ("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.4g} {unit}"
    return f"{pj:.4g} pJ"
