"""Rank statistics of a ranking study: Kendall tau-b, partial tau given a third variable, bootstrap intervals.

Kendall tau-b, Spearman rho and the bootstrap interval are
``edgeflownas.report.ranking``'s (tau and rho equal to scipy's, tie correction
included).  Partial tau is Kendall's partial rank correlation of x and y given
z::

    tau_xy.z = (tau_xy - tau_xz * tau_yz) / sqrt((1 - tau_xz^2) * (1 - tau_yz^2))

(Kendall 1942): what x says about y beyond what z says about both.  NaN when
undefined (a constant variable, or z ranking x or y perfectly).  Bootstrap
intervals resample the subjects (rows) with replacement and take percentiles;
resamples where the statistic is undefined are left out.
"""

from __future__ import annotations

import math
from typing import Sequence

from edgeflownas.report.ranking import bootstrap_interval, kendall_tau, spearman_rho

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

