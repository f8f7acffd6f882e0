"""Ranking stability of the evaluation pool: Kendall's tau between epochs' EPE rankings.

A supernet is useful for search only if its ordering of subnets is stable;
tau between consecutive evaluated epochs measures that (1 = same order,
-1 = reversed, ~0 = unrelated).  Kendall's tau-b is implemented here in pure
Python (O(n^2) pairs, n = pool size), so no scipy is needed; it equals
``scipy.stats.kendalltau`` (variant 'b'), including its tie correction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence


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
