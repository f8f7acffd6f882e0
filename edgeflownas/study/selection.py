"""The K subnets of a ranking study: stratified over total depth and MACs, fixed before any result.

Every one of the 3^9 codes has a total depth (ResBlocks over the four depth
blocks, 4..12) and a MAC count.  For each total depth, the codes of that depth
are sorted by MACs (ties by code) and cut into ``macs_bins`` equal-count bins;
one code is drawn from each bin with a generator seeded by (seed, depth, bin).
K = 9 x ``macs_bins`` subnets, a pure function of the seed, the bin count and
the cost table -- no EPE, score or training enters, so the choice cannot
adapt to results.  The study writes it to ``subnets.json`` before it trains
anything and refuses to go on under another choice.

MACs and params of a code are sums over its blocks (a block's option changes
only that block's convolutions and variables), so the cost table needs only
three built networks (every block at option 0, 1 and 2): ``block_cost_table``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

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


@dataclass(frozen=True)
class CostTable:
    """MACs and params of a subnet as the fixed part plus one term per (block, option)."""

    fixed_macs: int
    fixed_params: int
    macs: Tuple[Tuple[int, ...], ...]      # [block][option]
    params: Tuple[Tuple[int, ...], ...]

    def cost(self, code: Sequence[int]) -> Tuple[int, int]:
        """(MACs, params) of ``code``."""
        macs = self.fixed_macs + sum(self.macs[b][o] for b, o in enumerate(code))
        params = self.fixed_params + sum(self.params[b][o] for b, o in enumerate(code))
        return macs, params


def block_cost_table(height: int, width: int, model_cfg) -> CostTable:
    """The cost table at ``height`` x ``width`` from three built networks (``model.cost.subnet_cost``)."""
    from edgeflownas.model.cost import subnet_cost

    costs = [subnet_cost((option,) * NUM_BLOCKS, height, width, model_cfg) for option in range(NUM_OPTIONS)]
    fixed_macs = costs[0].block_macs["stem"]
    fixed_params = costs[0].block_params["stem"]
    return CostTable(fixed_macs, fixed_params,
                     tuple(tuple(c.block_macs[name] for c in costs) for name in BLOCK_NAMES),
                     tuple(tuple(c.block_params[name] for c in costs) for name in BLOCK_NAMES))


def stratified_codes(table: CostTable, macs_bins: int = 3, seed: int = 0) -> List[ArchCode]:
    """One code per (total depth, MACs bin within that depth), depth 4..12 ascending, bins ascending."""
    if macs_bins < 1:
        raise ValueError(f"macs_bins must be >= 1, got {macs_bins}")
    by_depth: Dict[int, List[Tuple[int, ArchCode]]] = {}
    for code in itertools.product(range(NUM_OPTIONS), repeat=NUM_BLOCKS):
        by_depth.setdefault(total_depth(code), []).append((table.cost(code)[0], code))
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
    return [{"depth": total_depth(code), "macs": table.cost(code)[0], "params": table.cost(code)[1]}
            for code in codes]
