"""Pareto fronts and hypervolume of two minimised objectives (EPE vs MACs, EPE vs params).

A point dominates another when it is no worse in both objectives and better in
one; the front is every point no other point dominates (identical points are
all kept).  The hypervolume of a set is the area it dominates inside the box
bounded by a reference point that every counted point must beat in both
objectives; the reference point is always stated beside the number.
"""

from __future__ import annotations

from itertools import groupby
from typing import List, Sequence, Tuple

Point = Tuple[float, float]


def pareto_front(points: Sequence[Point]) -> List[int]:
    """Indices of the non-dominated points (both objectives minimised), in order of the first objective."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front: List[int] = []
    best_second = float("inf")
    for _, group in groupby(order, key=lambda i: points[i][0]):
        members = list(group)
        lowest = min(points[i][1] for i in members)
        if lowest < best_second:
            front.extend(i for i in members if points[i][1] == lowest)
            best_second = lowest
    return front


def pareto_ranks(points: Sequence[Point]) -> List[int]:
    """Non-dominated sorting: rank 0 is the front, rank 1 the front of the rest, and so on."""
    ranks = [-1] * len(points)
    remaining = list(range(len(points)))
    rank = 0
    while remaining:
        layer = pareto_front([points[i] for i in remaining])
        for position in layer:
            ranks[remaining[position]] = rank
        taken = set(layer)
        remaining = [index for position, index in enumerate(remaining) if position not in taken]
        rank += 1
    return ranks


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """Area dominated by ``points`` and bounded by ``reference`` (points not beating it in both count nothing)."""
    inside = [p for p in points if p[0] < reference[0] and p[1] < reference[1]]
    front = sorted({inside[i] for i in pareto_front(inside)})
    area = 0.0
    for position, (first, second) in enumerate(front):
        next_first = front[position + 1][0] if position + 1 < len(front) else reference[0]
        area += (next_first - first) * (reference[1] - second)
    return area
