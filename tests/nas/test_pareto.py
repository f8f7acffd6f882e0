"""Pareto front, ranks and hypervolume against hand-made sets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgeflownas.nas.pareto import hypervolume, pareto_front, pareto_ranks


def brute_front(points):
    return sorted(i for i, p in enumerate(points)
                  if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points))


def test_front_of_a_hand_made_set():
    points = [(1.0, 9.0), (2.0, 5.0), (2.0, 7.0), (3.0, 5.0), (4.0, 1.0), (5.0, 1.0), (4.0, 1.0), (6.0, 0.5)]
    # (2,7) is dominated by (2,5); (3,5) by (2,5); (5,1) by (4,1); both copies of (4,1) stay.
    assert pareto_front(points) == [0, 1, 4, 6, 7]


def test_front_matches_brute_force_on_random_sets_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(50):
        points = [tuple(map(float, p)) for p in rng.integers(0, 6, size=(int(rng.integers(1, 30)), 2))]
        assert sorted(pareto_front(points)) == brute_front(points)


def test_ranks_peel_fronts():
    points = [(1.0, 3.0), (3.0, 1.0), (2.0, 4.0), (4.0, 2.0), (5.0, 5.0)]
    assert pareto_ranks(points) == [0, 0, 1, 1, 2]


def test_hypervolume_by_hand():
    # Front (1,3), (2,2), (3,1) with reference (4,4): 1*1 + 1*2 + 1*3 staircase = 6.
    assert hypervolume([(1.0, 3.0), (2.0, 2.0), (3.0, 1.0), (3.5, 3.5)], (4.0, 4.0)) == pytest.approx(6.0)
    # Points outside the reference box count nothing.
    assert hypervolume([(5.0, 0.0), (0.0, 5.0)], (4.0, 4.0)) == 0.0


def test_hypervolume_matches_grid_count():
    rng = np.random.default_rng(7)
    points = [tuple(map(float, p)) for p in rng.integers(0, 10, size=(12, 2))]
    grid = sum(1 for x, y in itertools.product(range(10), range(10))
               if any(p[0] <= x and p[1] <= y for p in points))
    assert hypervolume(points, (10.0, 10.0)) == pytest.approx(grid)
