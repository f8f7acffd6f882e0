"""Ranking stability of the evaluation pool: Kendall's tau between epochs' EPE rankings.

A supernet is useful for search only if its ordering of subnets is stable;
tau between consecutive evaluated epochs measures that (1 = same order,
-1 = reversed, ~0 = unrelated).  Kendall's tau-b is implemented here in pure
Python (O(n^2) pairs, n = pool size), so no scipy is needed; it equals
``scipy.stats.kendalltau`` (variant 'b'), including its tie correction.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Sequence, Tuple


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two paired samples; NaN if either is constant or shorter than 2."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau needs paired samples, got lengths {len(x)} and {len(y)}")
    x, y = [float(v) for v in x], [float(v) for v in y]
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx = _sign(x[i] - x[j])
            dy = _sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    if denominator == 0:
        return float("nan")
    return (concordant - discordant) / denominator


def _sign(value: float) -> int:
    return int(value > 0) - int(value < 0)


def ranks(values: Sequence[float]) -> List[int]:
    """1-based rank of each value, lowest first (ties broken by position, as the ranking table shows)."""
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    result = [0] * len(values)
    for rank, index in enumerate(order, start=1):
        result[index] = rank
    return result


@dataclass(frozen=True)
class TauStep:
    """Kendall tau between the pool rankings of two consecutive evaluated epochs."""

    epoch_from: int
    epoch_to: int
    tau: float


def evaluated_rows(history: Sequence[Mapping[str, object]], columns: Sequence[str]) -> List[Mapping[str, object]]:
    """The history rows that carry a value for every one of ``columns`` (epochs with a pool evaluation)."""
    return [row for row in history if all(row.get(c) is not None for c in columns)]


def consecutive_taus(history: Sequence[Mapping[str, object]], columns: Sequence[str],
                     last: Optional[int] = None) -> List[TauStep]:
    """Tau between each pair of consecutive evaluated epochs (the last ``last`` pairs if given)."""
    rows = evaluated_rows(history, columns)
    steps = [TauStep(int(a["epoch"]), int(b["epoch"]),
                     kendall_tau([float(a[c]) for c in columns], [float(b[c]) for c in columns]))
             for a, b in zip(rows, rows[1:])]
    return steps if last is None else steps[-last:]


def average_ranks(values: Sequence[float]) -> List[float]:
    """1-based ranks, lowest first, ties sharing their average rank (as Spearman's rho needs)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            result[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (Pearson correlation of average ranks, so ties are handled); NaN if either is constant."""
    if len(x) != len(y):
        raise ValueError(f"spearman_rho needs paired samples, got lengths {len(x)} and {len(y)}")
    rx, ry = average_ranks([float(v) for v in x]), average_ranks([float(v) for v in y])
    n = len(rx)
    if n < 2:
        return float("nan")
    mx, my = sum(rx) / n, sum(ry) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return float("nan")
    return sxy / math.sqrt(sxx * syy)


def bootstrap_interval(columns: Sequence[Sequence[float]], statistic: Callable[..., float], resamples: int = 2000,
                       level: float = 0.95, seed: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*columns)``, resampling the rows (subjects) with replacement.

    Resamples on which the statistic is undefined (NaN, e.g. every drawn pair tied) are left out; (NaN, NaN) if
    none is left.  Of the m values left, the floor(m * (1 - level) / 2) smallest and as many largest lie outside
    the interval, the same count on each side.  The product is rounded before the floor because floats miss
    exact multiples: (1 - 0.9) / 2 * 300 is 14.999999999999996, whose plain floor would put 14 values below the
    interval and 15 above it.
    """
    lengths = {len(column) for column in columns}
    if len(lengths) != 1:
        raise ValueError(f"bootstrap_interval needs columns of one length, got lengths {sorted(lengths)}")
    n = lengths.pop()
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        value = statistic(*[[column[i] for i in picks] for column in columns])
        if not math.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    values.sort()
    outside = int(math.floor(round((1.0 - level) / 2 * len(values), 9)))
    return values[min(len(values) - 1, outside)], values[max(0, len(values) - 1 - outside)]
