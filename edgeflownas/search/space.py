"""The searchable space, the exact cost of any code, and cost constraints.

Costs are additive over blocks: a code's params and MACs are the stem's plus,
for each block, that block's cost at its chosen option (each block's weights
and convolutions depend on its own option only; ``tests/search`` checks the
sum against the model's own count for random codes).  So three graph builds,
the codes 000000000, 111111111 and 222222222, give the exact cost of all
19,683 codes, and constraints are checked before anything is scored.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Mapping, Sequence, Tuple

import numpy as np

from edgeflownas.errors import SearchUsageError
from edgeflownas.model.cost import CostTable
from edgeflownas.nas.arch_codec import BLOCK_NAMES, NUM_BLOCKS, NUM_OPTIONS, ArchCode

COST_KEYS = ("macs", "params", "latency")
# constraint key -> the cost entry it bounds (latency: milliseconds predicted by a latency table)
COST_ENTRY = {"macs": "macs", "params": "params", "latency": "latency_ms"}
_CONSTRAINT = re.compile(r"^\s*([a-z_]+)\s*(<=|>=)\s*([0-9.eE+-]+)\s*(ms)?\s*$")


@dataclass(frozen=True)
class SearchSpace:
    """All codes, or those with some blocks fixed (``fixed``: block index -> option)."""

    fixed: Mapping[int, int] = field(default_factory=dict)

    @property
    def free_blocks(self) -> Tuple[int, ...]:
        """Indices of the blocks a search may change."""
        return tuple(b for b in range(NUM_BLOCKS) if b not in self.fixed)

    @property
    def size(self) -> int:
        """Number of codes in the space."""
        return NUM_OPTIONS ** len(self.free_blocks)

    def codes(self) -> Iterator[ArchCode]:
        """Every code of the space, in lexicographic order."""
        for free in itertools.product(range(NUM_OPTIONS), repeat=len(self.free_blocks)):
            code = [0] * NUM_BLOCKS
            for block, option in self.fixed.items():
                code[block] = option
            for block, option in zip(self.free_blocks, free):
                code[block] = option
            yield tuple(code)

    def random_code(self, rng: np.random.Generator) -> ArchCode:
        """A uniform draw from the space."""
        return tuple(self.fixed.get(b, int(rng.integers(NUM_OPTIONS))) for b in range(NUM_BLOCKS))

    def mutate(self, code: ArchCode, rng: np.random.Generator, probability: float) -> ArchCode:
        """Each free block redrawn uniformly with ``probability`` (SPOS's mutation)."""
        return tuple(int(rng.integers(NUM_OPTIONS)) if b not in self.fixed and rng.random() < probability else o
                     for b, o in enumerate(code))

    def crossover(self, first: ArchCode, second: ArchCode, rng: np.random.Generator) -> ArchCode:
        """Uniform crossover: each block from either parent with equal chance."""
        return tuple(a if rng.random() < 0.5 else b for a, b in zip(first, second))


def parse_fixed(texts: Sequence[str]) -> SearchSpace:
    """A space from ``BLOCK=OPTION`` items (e.g. ``EB0=0``); SearchError naming a bad item."""
    fixed: Dict[int, int] = {}
    for text in texts:
        name, _, value = text.partition("=")
        name = name.strip().upper()
        if name not in BLOCK_NAMES or value.strip() not in ("0", "1", "2"):
            raise SearchUsageError(f"--fix {text!r}: expected BLOCK=OPTION with BLOCK one of {', '.join(BLOCK_NAMES)} "
                              "and OPTION 0, 1 or 2 (e.g. --fix EB0=0)")
        fixed[BLOCK_NAMES.index(name)] = int(value)
    return SearchSpace(fixed)


@dataclass(frozen=True)
class Constraint:
    """``key op value`` on a cost (e.g. macs <= 2.0e9)."""

    key: str
    op: str
    value: float

    def holds(self, cost: Mapping[str, float]) -> bool:
        """True if ``cost`` satisfies the constraint."""
        value = cost[COST_ENTRY[self.key]]
        return value <= self.value if self.op == "<=" else value >= self.value

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value:g}" + ("ms" if self.key == "latency" else "")


def parse_constraint(text: str) -> Constraint:
    """``macs<=2.0e9`` / ``params>=1e6`` / ``latency<=15ms`` -> Constraint; SearchError saying the valid form."""
    match = _CONSTRAINT.match(text)
    if not match:
        raise SearchUsageError(f"--constraint {text!r}: expected KEY<=NUMBER or KEY>=NUMBER with KEY one of "
                               f"{', '.join(COST_KEYS)} (e.g. --constraint macs<=2.0e9, --constraint latency<=15ms)")
    key, op, number, unit = match.groups()
    if key not in COST_KEYS:
        raise SearchUsageError(f"--constraint {text!r}: unknown key {key!r}; constraints apply to "
                               f"{', '.join(COST_KEYS)} (MACs per image pair; FLOPs = 2 x MACs; latency in ms)")
    if unit and key != "latency":
        raise SearchUsageError(f"--constraint {text!r}: 'ms' is the unit of latency only; {key} is a plain count")
    try:
        value = float(number)
    except ValueError:
        raise SearchUsageError(f"--constraint {text!r}: {number!r} is not a number") from None
    if not np.isfinite(value):
        raise SearchUsageError(f"--constraint {text!r}: the bound must be a finite number")
    return Constraint(key, op, value)


def feasible_codes(space: SearchSpace, table: CostTable, constraints: Sequence[Constraint]) -> List[ArchCode]:
    """Every code of ``space`` meeting all constraints; SearchError if none does (saying the cheapest cost)."""
    needs_latency = [str(c) for c in constraints if COST_ENTRY[c.key] not in table.cost(next(space.codes()))]
    if needs_latency:
        raise SearchUsageError(f"--constraint {needs_latency[0]} needs a latency table: give --latency_table TABLE.json "
                          "(written by efnas latency for this run)")
    codes = [code for code in space.codes() if all(c.holds(table.cost(code)) for c in constraints)]
    if not codes:
        costs = [table.cost(code) for code in space.codes()]
        ranges = ", ".join(f"{key} {min(c[key] for c in costs):.4g}..{max(c[key] for c in costs):.4g}"
                           for key in (COST_ENTRY[k] for k in COST_KEYS) if key in costs[0])
        limits = ", ".join(str(c) for c in constraints)
        raise SearchUsageError(f"no code of the {space.size}-code space meets {limits} (its costs span {ranges} at "
                          f"{table.height}x{table.width}): loosen the constraint")
    return codes
