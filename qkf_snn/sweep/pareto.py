"""The accuracy-versus-energy front: which points no other point beats on both counts."""

from __future__ import annotations

import math
from collections.abc import Sequence


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """``a = (energy, accuracy)`` dominates ``b``: no more energy, no less accuracy, better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(energy, accuracy)`` points, by energy ascending (ties: higher
    accuracy first, then input order). Equal points are all kept: neither beats the other."""
    for i, (energy, acc) in enumerate(points):
        if not (math.isfinite(energy) and math.isfinite(acc)):
            raise ValueError(f"point {i}: energy and accuracy must be finite, got ({energy}, {acc})")
    front = [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1], i))
