"""Rank statistics of a ranking study: Kendall tau-b, partial tau given a third variable, bootstrap intervals,
and the Kruskal-Wallis and Friedman tests of whether groups (a subnet's retrains) differ at all.

Kendall tau-b, Spearman rho and the bootstrap interval are
``edgeflownas.report.ranking``'s (tau and rho equal to scipy's, tie correction
included).  Partial tau is Kendall's partial rank correlation of x and y given
z::

    tau_xy.z = (tau_xy - tau_xz * tau_yz) / sqrt((1 - tau_xz^2) * (1 - tau_yz^2))

(Kendall 1942): what x says about y beyond what z says about both.  NaN when
undefined (a constant variable, or z ranking x or y perfectly).  Bootstrap
intervals resample the subjects (rows) with replacement and take percentiles;
resamples where the statistic is undefined are left out.

Kruskal-Wallis H over groups of values (all values ranked together, ties
sharing their average rank; N values, group i with n_i values and rank sum
R_i)::

    H = (12 / (N (N + 1)) * sum(R_i^2 / n_i) - 3 (N + 1)) / (1 - sum(t^3 - t) / (N^3 - N))

(t: the size of each group of tied values), with the p-value of a chi-square
with (groups - 1) degrees of freedom -- scipy.stats.kruskal's definition.  A
large p says the groups differ no more than their members do among
themselves.

Friedman's test for k treatments measured in n blocks (every treatment once
per block; here the subnets, and the retrain seeds as blocks: one seed gives
every subnet the same data order, so a seed's own luck moves all of them
alike).  Values are ranked within each block (ties sharing their average
rank); with R_j the rank sum of treatment j::

    Q = (12 / (n k (k + 1)) * sum(R_j^2) - 3 n (k + 1)) / (1 - sum(t^3 - t) / (n k (k^2 - 1)))

(t: the size of each group of ties within a block), with the p-value of a
chi-square with (k - 1) degrees of freedom -- scipy.stats.friedmanchisquare's
definition -- and Kendall's coefficient of concordance W = Q / (n (k - 1)):
0 = the blocks rank the treatments independently, 1 = identically.  It asks
what the noise ceiling asks (do two seeds rank the subnets alike?), without
the seeds' common offsets that Kruskal-Wallis counts as noise.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

from edgeflownas.report.ranking import average_ranks, bootstrap_interval, kendall_tau, spearman_rho

__all__ = ["kendall_tau", "spearman_rho", "partial_tau", "bootstrap_interval", "kruskal_wallis", "friedman",
           "chi2_sf"]


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



def kruskal_wallis(groups: Sequence[Sequence[float]]) -> Tuple[float, int, float]:
    """H, degrees of freedom and p-value of the Kruskal-Wallis test (module doc); NaNs when undefined (fewer than
    two non-empty groups, or every value equal)."""
    groups = [[float(value) for value in group] for group in groups if len(group)]
    values = [value for group in groups for value in group]
    n, df = len(values), len(groups) - 1
    if df < 1 or any(math.isnan(value) for value in values):
        return float("nan"), df, float("nan")
    ranks = average_ranks(values)
    h, start = 0.0, 0
    for group in groups:
        h += sum(ranks[start:start + len(group)]) ** 2 / len(group)
        start += len(group)
    h = 12.0 / (n * (n + 1)) * h - 3.0 * (n + 1)
    counts: dict = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    correction = 1.0 - sum(t ** 3 - t for t in counts.values()) / (n ** 3 - n)
    if correction <= 0.0:
        return float("nan"), df, float("nan")
    h /= correction
    return h, df, chi2_sf(h, df)


def friedman(blocks: Sequence[Sequence[float]]) -> Tuple[float, int, float, float]:
    """Q, degrees of freedom, p-value and Kendall's W of Friedman's test (module doc); ``blocks[i][j]`` is
    treatment j's value in block i.  NaNs when undefined (fewer than two treatments or blocks, ragged blocks, a NaN
    value, or every block all ties)."""
    blocks = [[float(value) for value in block] for block in blocks]
    n, k = len(blocks), len(blocks[0]) if blocks else 0
    df = k - 1
    if n < 2 or k < 2 or any(len(block) != k for block in blocks) or any(
            math.isnan(value) for block in blocks for value in block):
        return float("nan"), df, float("nan"), float("nan")
    sums = [0.0] * k
    ties = 0.0
    for block in blocks:
        for j, rank in enumerate(average_ranks(block)):
            sums[j] += rank
        counts: dict = {}
        for value in block:
            counts[value] = counts.get(value, 0) + 1
        ties += sum(t ** 3 - t for t in counts.values())
    correction = 1.0 - ties / (n * k * (k * k - 1))
    if correction <= 0.0:
        return float("nan"), df, float("nan"), float("nan")
    q = (12.0 / (n * k * (k + 1)) * sum(r * r for r in sums) - 3.0 * n * (k + 1)) / correction
    return q, df, chi2_sf(q, df), q / (n * df)


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X chi-square with ``df`` degrees of freedom: the regularized upper incomplete gamma Q(df/2, x/2)
    (a series below a + 1, a continued fraction above, as in Numerical Recipes' gammq)."""
    if df < 1:
        raise ValueError(f"chi-square needs df >= 1, got {df}")
    if x <= 0.0:
        return 1.0
    a, z = df / 2.0, x / 2.0
    log_front = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1.0:  # P by its series, Q = 1 - P
        term = total = 1.0 / a
        denominator = a
        for _ in range(10_000):
            denominator += 1.0
            term *= z / denominator
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300  # Q by Lentz's continued fraction
    b = z + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return min(1.0, math.exp(log_front) * h)
