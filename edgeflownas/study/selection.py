"""The K subnets of a ranking study: stratified over total depth and MACs, fixed before any result.

Every one of the 3^9 codes has a total depth (ResBlocks over the four depth
blocks, 4..12) and a MAC count.  For each total depth, the codes of that depth
are sorted by MACs (ties by code) and cut into ``macs_bins`` equal-count bins;
one code is drawn from each bin with a generator seeded by (seed, depth, bin).
K = 9 x ``macs_bins`` subnets, a pure function of the seed, the bin count and
the cost table -- no EPE, score or training enters, so the choice cannot
adapt to results.  The study writes it to ``subnets.json`` before it trains
anything and refuses to go on under another choice.

MACs and params of a code come from ``model.cost.CostTable``, the cost every
command gives a subnet (sums over its blocks, from three built networks).
"""

from __future__ import annotations

import itertools
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from edgeflownas.model.cost import CostTable
from edgeflownas.nas.arch_codec import BLOCK_NAMES, DEPTH_CHOICES, NUM_BLOCKS, NUM_OPTIONS, ArchCode

DEPTH_BLOCKS = ("EB0", "EB1", "DB0", "DB1")
_DEPTH_INDEX = tuple(BLOCK_NAMES.index(name) for name in DEPTH_BLOCKS)
MIN_DEPTH = len(DEPTH_BLOCKS) * min(DEPTH_CHOICES)
MAX_DEPTH = len(DEPTH_BLOCKS) * max(DEPTH_CHOICES)


def total_depth(code: Sequence[int]) -> int:
    """ResBlocks of a subnet over its four depth blocks (4..12)."""
    return sum(DEPTH_CHOICES[code[index]] for index in _DEPTH_INDEX)


def hamming(code: Sequence[int], other: Sequence[int]) -> int:
    """Blocks in which two codes choose different options."""
    return sum(a != b for a, b in zip(code, other))


def stratified_codes(table: CostTable, macs_bins: int = 3, seed: int = 0) -> List[ArchCode]:
    """One code per (total depth, MACs bin within that depth), depth 4..12 ascending, bins ascending."""
    if macs_bins < 1:
        raise ValueError(f"macs_bins must be >= 1, got {macs_bins}")
    by_depth: Dict[int, List[Tuple[int, ArchCode]]] = {}
    for code in itertools.product(range(NUM_OPTIONS), repeat=NUM_BLOCKS):
        by_depth.setdefault(total_depth(code), []).append((table.cost(code)["macs"], code))
    chosen: List[ArchCode] = []
    for depth in range(MIN_DEPTH, MAX_DEPTH + 1):
        ordered = sorted(by_depth[depth])
        if len(ordered) < macs_bins:
            raise ValueError(f"total depth {depth} has {len(ordered)} codes, fewer than macs_bins={macs_bins}")
        for index, part in enumerate(np.array_split(np.arange(len(ordered)), macs_bins)):
            rng = np.random.default_rng([int(seed), depth, index])
            chosen.append(tuple(int(o) for o in ordered[int(rng.choice(part))][1]))
    return chosen


def strata(codes: Sequence[ArchCode], table: CostTable) -> List[Mapping[str, int]]:
    """Total depth, MACs and params of each code (what study.json records next to the choice)."""
    costs = [table.cost(code) for code in codes]
    return [{"depth": total_depth(code), "macs": cost["macs"], "params": cost["params"]}
            for code, cost in zip(codes, costs)]
