"""The front's selection on hand-made points: dominated points, ties in energy, in accuracy, and
duplicates, and properties on random points checked against the front's definition."""

from __future__ import annotations

import math
import random

import pytest

from qkf_snn.sweep.pareto import dominates, pareto_front


def test_hand_made_points_with_ties_and_dominated_ones():
    points = [
        (4.0, 0.80),  # 0: the most accurate, most expensive: on the front
        (2.0, 0.70),  # 1: on the front
        (2.0, 0.65),  # 2: same energy as 1, less accurate: dominated
        (3.0, 0.70),  # 3: same accuracy as 1, more energy: dominated
        (1.0, 0.50),  # 4: cheapest: on the front
        (2.0, 0.70),  # 5: a duplicate of 1: neither beats the other, both kept
        (5.0, 0.79),  # 6: dominated by 0 on both counts
        (1.5, 0.50),  # 7: same accuracy as 4, more energy: dominated
    ]
    assert pareto_front(points) == [4, 1, 5, 0]


def test_dominates_needs_one_strict_improvement():
    assert dominates((1.0, 0.5), (2.0, 0.5)) and dominates((1.0, 0.6), (1.0, 0.5))
    assert not dominates((1.0, 0.5), (1.0, 0.5))
    assert not dominates((1.0, 0.4), (2.0, 0.5)) and not dominates((2.0, 0.5), (1.0, 0.4))


def test_trivial_and_bad_inputs():
    assert pareto_front([]) == []
    assert pareto_front([(3.0, 0.1)]) == [0]
    assert pareto_front([(1.0, 0.9), (2.0, 0.5)]) == [0]  # one point beats the other outright
    with pytest.raises(ValueError, match="point 1"):
        pareto_front([(1.0, 0.5), (math.nan, 0.5)])


def test_random_points_satisfy_the_definition():
    rng = random.Random(0)
    for _ in range(50):
        # few distinct values, so that ties in energy, in accuracy and duplicates are common
        points = [(rng.choice([0.5, 1.0, 1.7, 2.0]), rng.choice([0.3, 0.55, 0.6, 0.9])) for _ in range(12)]
        front = pareto_front(points)
        assert len(set(front)) == len(front)
        for i in front:  # nothing beats a front point
            assert not any(dominates(q, points[i]) for q in points)
        for i in set(range(len(points))) - set(front):  # every other point is beaten by a front point
            assert any(dominates(points[j], points[i]) for j in front)
        energies = [points[i][0] for i in front]
        accs = [points[i][1] for i in front]
        assert energies == sorted(energies)
        # along the front, more energy buys strictly more accuracy (equal points excepted)
        for a, b in zip(front, front[1:], strict=False):
            assert points[a] == points[b] or (points[a][0] < points[b][0] and points[a][1] < points[b][1])
        assert accs == sorted(accs)
