"""Rank statistics of a ranking study: Kendall tau-b, partial tau given a third variable, bootstrap intervals.

Kendall tau-b and Spearman rho are ``edgeflownas.report.ranking``'s (equal to
scipy's, tie correction included).  Partial tau is Kendall's partial rank
correlation of x and y given z::

    tau_xy.z = (tau_xy - tau_xz * tau_yz) / sqrt((1 - tau_xz^2) * (1 - tau_yz^2))

(Kendall 1942): what x says about y beyond what z says about both.  NaN when
undefined (a constant variable, or z ranking x or y perfectly).  Bootstrap
intervals resample the subjects (rows) with replacement and take percentiles;
resamples where the statistic is undefined are left out.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence, Tuple

from edgeflownas.report.ranking import kendall_tau, spearman_rho

__all__ = ["kendall_tau", "spearman_rho", "partial_tau", "bootstrap_interval"]


def partial_tau(x: Sequence[float], y: Sequence[float], z: Sequence[float]) -> float:
    """Kendall's partial tau of x and y given z; NaN if undefined."""
    if not len(x) == len(y) == len(z):
        raise ValueError(f"partial_tau needs paired samples, got lengths {len(x)}, {len(y)}, {len(z)}")
    xy, xz, yz = kendall_tau(x, y), kendall_tau(x, z), kendall_tau(y, z)
    if any(math.isnan(value) for value in (xy, xz, yz)):
        return float("nan")
    denominator = (1.0 - xz * xz) * (1.0 - yz * yz)
    if denominator <= 1e-12:
        return float("nan")
    return (xy - xz * yz) / math.sqrt(denominator)


def bootstrap_interval(columns: Sequence[Sequence[float]], statistic: Callable[..., float], resamples: int = 2000,
                       level: float = 0.95, seed: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*columns)``, resampling the rows (subjects) with replacement.

    (NaN, NaN) if the statistic is undefined on every resample.
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
    # Rounded first: (1 - 0.9) / 2 * 300 is 14.999999999999998 in floats, and the 5% point is index 15.
    tail = (1.0 - level) / 2
    low = values[min(len(values) - 1, int(math.floor(round(tail * len(values), 9))))]
    high = values[max(0, int(math.ceil(round((1.0 - tail) * len(values), 9))) - 1)]
    return low, high
