"""Strict-fairness path sampler (docs/design.md §4).

A fairness cycle draws, for each of the 9 blocks, a random permutation of its
3 options; path ``i`` takes option ``perm[block][i]``.  The 3 paths of one
cycle therefore use every option of every block exactly once, so after any
number of complete cycles all option counts of a block are equal
(``fairness_gap == 0``).  The paths of cycle ``k`` are a pure function of
``(seed, k)``: a resumed run continues the exact sequence.

``python -m edgeflownas.nas.fair_sampler --cycles 300 --seed 42 --check``
prints the per-block option counts and exits 0 only if every count equals the
number of cycles and two independent runs agree on the first 100 cycles.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from edgeflownas.nas.arch_codec import BLOCK_NAMES, NUM_BLOCKS, NUM_OPTIONS, ArchCode

PATHS_PER_CYCLE = NUM_OPTIONS

# Separates the training sampler's random stream from other consumers of the seed.
_SAMPLER_STREAM = 0x5A3F


def cycle_permutations(rng: np.random.Generator) -> np.ndarray:
    """One fairness cycle drawn from ``rng``: array [NUM_BLOCKS, 3], row b = permutation of block b's options."""
    return np.stack([rng.permutation(NUM_OPTIONS) for _ in range(NUM_BLOCKS)])


def paths_from_permutations(perms: np.ndarray) -> Tuple[ArchCode, ...]:
    """Turn a [NUM_BLOCKS, 3] permutation table into the 3 arch codes of the cycle."""
    return tuple(tuple(int(perms[b, i]) for b in range(NUM_BLOCKS)) for i in range(PATHS_PER_CYCLE))


def cycle_paths(seed: int, cycle_index: int) -> Tuple[ArchCode, ...]:
    """The 3 arch codes of fairness cycle ``cycle_index`` (a pure function of seed and index)."""
    if cycle_index < 0:
        raise ValueError(f"cycle_index must be >= 0, got {cycle_index}")
    rng = np.random.default_rng([_SAMPLER_STREAM, int(seed), int(cycle_index)])
    return paths_from_permutations(cycle_permutations(rng))


def empty_counts() -> np.ndarray:
    """A zero option-count table [NUM_BLOCKS, NUM_OPTIONS] (int64)."""
    return np.zeros((NUM_BLOCKS, NUM_OPTIONS), dtype=np.int64)


def add_counts(counts: np.ndarray, paths: Iterable[Sequence[int]]) -> np.ndarray:
    """Add the option usage of ``paths`` to ``counts`` in place and return it."""
    for code in paths:
        if len(code) != NUM_BLOCKS:
            raise ValueError(f"arch code of length {len(code)}, expected {NUM_BLOCKS}: {tuple(code)}")
        for block, option in enumerate(code):
            counts[block, int(option)] += 1
    return counts


def option_counts(seed: int, num_cycles: int, start_cycle: int = 0) -> np.ndarray:
    """Option counts [NUM_BLOCKS, NUM_OPTIONS] over cycles ``start_cycle .. start_cycle+num_cycles-1``."""
    counts = empty_counts()
    for k in range(start_cycle, start_cycle + num_cycles):
        add_counts(counts, cycle_paths(seed, k))
    return counts


def fairness_gap(counts: np.ndarray) -> int:
    """max over blocks of (max - min) option count; 0 means strictly fair."""
    counts = np.asarray(counts)
    return int((counts.max(axis=1) - counts.min(axis=1)).max())


def check(seed: int, cycles: int, repeat_cycles: int = 100) -> Tuple[bool, np.ndarray, List[str]]:
    """Run the acceptance check; returns (ok, counts, failure lines)."""
    counts = option_counts(seed, cycles)
    failures = []
    bad = [(b, o, int(counts[b, o])) for b in range(NUM_BLOCKS) for o in range(NUM_OPTIONS) if counts[b, o] != cycles]
    failures.extend(f"block {BLOCK_NAMES[b]} option {o}: count {c} != {cycles}" for b, o, c in bad)
    first = [cycle_paths(seed, k) for k in range(min(repeat_cycles, cycles))]
    second = [cycle_paths(seed, k) for k in range(min(repeat_cycles, cycles))]
    mismatched = [k for k, (a, b) in enumerate(zip(first, second)) if a != b]
    failures.extend(f"cycle {k}: paths differ between two runs with seed {seed}" for k in mismatched)
    return not failures, counts, failures


def sequence_digest(seed: int, num_cycles: int) -> str:
    """sha256 of the first ``num_cycles`` cycles' paths; equal digests = identical sequences across runs."""
    text = ";".join(",".join("".join(map(str, code)) for code in cycle_paths(seed, k)) for k in range(num_cycles))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def format_counts(counts: np.ndarray, names: Optional[Sequence[str]] = None) -> str:
    """A small table: one row per block with its option counts."""
    names = names or BLOCK_NAMES
    lines = ["block  " + "  ".join(f"opt{o:<5d}" for o in range(NUM_OPTIONS)) + "  gap"]
    for b in range(NUM_BLOCKS):
        row = "  ".join(f"{int(c):<8d}" for c in counts[b])
        lines.append(f"{names[b]:<6} {row}  {int(counts[b].max() - counts[b].min())}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point of the sampler check."""
    parser = argparse.ArgumentParser(prog="python -m edgeflownas.nas.fair_sampler", description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=300, help="number of fairness cycles to draw")
    parser.add_argument("--seed", type=int, default=42, help="sampler seed")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every count == cycles and runs repeat")
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles must be >= 1")
    ok, counts, failures = check(args.seed, args.cycles)
    print(f"seed={args.seed} cycles={args.cycles} paths={args.cycles * PATHS_PER_CYCLE}")
    print(format_counts(counts))
    print(f"fairness_gap={fairness_gap(counts)}")
    print(f"first_100_cycles_sha256={sequence_digest(args.seed, min(100, args.cycles))}")
    if not args.check:
        return 0
    for line in failures:
        print(f"FAIL {line}", file=sys.stderr)
    print("check: OK" if ok else "check: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
