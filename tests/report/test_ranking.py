"""Kendall tau-b (scipy-free) against hand-computed cases; ranks, consecutive-epoch taus, the bootstrap interval."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from edgeflownas.report.ranking import bootstrap_interval, consecutive_taus, evaluated_rows, kendall_tau, ranks


@pytest.mark.parametrize("x, y, expected", [
    ([1, 2, 3, 4], [1, 2, 3, 4], 1.0),
    ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
    ([1, 2, 3, 4], [2, 1, 3, 4], 4 / 6),                 # one adjacent swap: 5 concordant, 1 discordant of 6
    ([1, 2, 3, 4, 5], [3, 1, 2, 5, 4], 0.4),             # 7 concordant, 3 discordant
    ([1, 2, 2, 3], [1, 2, 3, 3], 0.8),                   # tau-b: 4 / sqrt((4+1) * (4+1))
    ([0.9, 1.7, 1.2], [10.0, 30.0, 20.0], 1.0),          # only the order matters
])
def test_kendall_tau_hand_computed(x, y, expected):
    assert kendall_tau(x, y) == pytest.approx(expected)


def test_kendall_tau_undefined_and_mismatched():
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau([1], [1]))
    with pytest.raises(ValueError, match="paired"):
        kendall_tau([1, 2], [1, 2, 3])


def test_kendall_tau_equals_inversion_count_formula_without_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.permutation(12)
        inversions = sum(1 for i in range(12) for j in range(i + 1, 12) if y[i] > y[j])
        assert kendall_tau(list(range(12)), list(y)) == pytest.approx(1 - 4 * inversions / (12 * 11))


def test_ranks_lowest_first_ties_by_position():
    assert ranks([2.5, 0.5, 1.5]) == [3, 1, 2]
    assert ranks([1.0, 1.0, 0.0]) == [2, 3, 1]


def test_consecutive_taus_skip_epochs_without_evaluation():
    history = [
        {"epoch": 1, "a": 1.0, "b": 2.0, "c": 3.0},
        {"epoch": 2, "a": None, "b": None, "c": None},
        {"epoch": 3, "a": 3.0, "b": 2.0, "c": 1.0},
        {"epoch": 4, "a": 3.0, "b": 1.0, "c": 2.0},
    ]
    assert [row["epoch"] for row in evaluated_rows(history, ["a", "b", "c"])] == [1, 3, 4]
    steps = consecutive_taus(history, ["a", "b", "c"])
    assert [(s.epoch_from, s.epoch_to) for s in steps] == [(1, 3), (3, 4)]
    assert steps[0].tau == pytest.approx(-1.0)
    assert steps[1].tau == pytest.approx(1 / 3)
    assert consecutive_taus(history, ["a", "b", "c"], last=1) == steps[-1:]


@pytest.mark.parametrize("level, resamples", [("0.9", 300), ("0.95", 2000), ("0.9", 299), ("0.8", 50)])
def test_bootstrap_interval_leaves_as_many_values_out_on_each_side(level, resamples):
    """(1 - 0.9) / 2 * 300 is 14.999999999999996 in floats: the interval must still leave 15 values out each side."""
    x = np.random.default_rng(4).normal(size=30)
    low, high = bootstrap_interval([list(x)], lambda column: float(np.mean(column)), resamples, float(level), seed=7)
    # the same resamples drawn here, the statistic by numpy, the count left out in exact fractions
    r = random.Random(7)
    values = np.sort([np.mean(x[[r.randrange(30) for _ in range(30)]]) for _ in range(resamples)])
    outside = math.floor((1 - Fraction(level)) / 2 * resamples)
    assert len(np.unique(values)) == resamples                      # no ties: the counts below are exact
    assert int(np.sum(values < low)) == outside == int(np.sum(values > high))
    assert (low, high) == (values[outside], values[resamples - 1 - outside])


def test_bootstrap_interval_skips_undefined_resamples_and_is_shared_by_the_study():
    from edgeflownas.study import stats

    assert stats.bootstrap_interval is bootstrap_interval
    low, high = bootstrap_interval([[1.0, 1.0, 2.0], [1.0, 2.0, 3.0]], kendall_tau, 200, seed=0)
    assert not math.isnan(low) and not math.isnan(high)
    assert all(math.isnan(v) for v in bootstrap_interval([[1.0, 1.0], [2.0, 2.0]], kendall_tau, 50))
    with pytest.raises(ValueError, match="one length"):
        bootstrap_interval([[1.0, 2.0], [1.0]], kendall_tau)
