"""The fixed, stratified evaluation pool of subnets (docs/design.md §5).

The pool is ``pool_size // 3`` groups of 3; each group is one fairness cycle
(every option of every block exactly once), so over the default 12 subnets
each option of each block appears exactly 4 times.  The pool is a pure
function of the seed, contains no duplicate subnet, and is saved as
``eval_pool_12.json`` together with that seed; a resumed run reads it back
from the run directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from edgeflownas.atomic_io import write_json_atomic
from edgeflownas.errors import CheckpointError
from edgeflownas.nas.arch_codec import BLOCK_NAMES, NUM_OPTIONS, ArchCode, arch_name
from edgeflownas.nas.fair_sampler import (
    PATHS_PER_CYCLE,
    add_counts,
    cycle_permutations,
    empty_counts,
    paths_from_permutations,
)

# Separates the pool's random stream from the training sampler's.
_POOL_STREAM = 0xE7A1
_MAX_REDRAWS = 1000


def pool_file_name(pool_size: int) -> str:
    """File name of the saved pool, e.g. ``eval_pool_12.json``."""
    return f"eval_pool_{pool_size}.json"


def build_pool(seed: int, pool_size: int = 12) -> Tuple[ArchCode, ...]:
    """The stratified pool: ``pool_size // 3`` fairness cycles, no subnet repeated (pure in seed)."""
    if pool_size < PATHS_PER_CYCLE or pool_size % PATHS_PER_CYCLE:
        raise ValueError(f"pool_size must be a positive multiple of {PATHS_PER_CYCLE}, got {pool_size}")
    rng = np.random.default_rng([_POOL_STREAM, int(seed)])
    pool: List[ArchCode] = []
    for _group in range(pool_size // PATHS_PER_CYCLE):
        for _attempt in range(_MAX_REDRAWS):
            group = paths_from_permutations(cycle_permutations(rng))
            if not set(group) & set(pool):
                break
        else:
            raise RuntimeError(f"could not draw {pool_size} distinct subnets in {_MAX_REDRAWS} tries")
        pool.extend(group)
    return tuple(pool)


def pool_option_counts(pool: Sequence[ArchCode]) -> np.ndarray:
    """Option counts [blocks, options] over the pool."""
    return add_counts(empty_counts(), pool)


def pool_document(seed: int, pool: Sequence[ArchCode]) -> Dict[str, Any]:
    """The JSON-ready description of a pool (seed, groups, codes, names, option counts)."""
    counts = pool_option_counts(pool)
    return {
        "seed": int(seed),
        "pool_size": len(pool),
        "rule": ("fixed_arch: the run's own subnet" if len(pool) == 1 else
                 "stratified: pool_size/3 groups, each group one fairness cycle (every option of every block once)"),
        "subnets": [
            {"index": i, "group": i // PATHS_PER_CYCLE, "name": arch_name(code), "arch_code": list(code)}
            for i, code in enumerate(pool)
        ],
        "option_counts": {name: [int(c) for c in counts[b]] for b, name in enumerate(BLOCK_NAMES)},
    }


def save_pool(path: Path, seed: int, pool: Sequence[ArchCode]) -> None:
    """Write the pool document atomically."""
    write_json_atomic(path, pool_document(seed, pool))


def check_pool(pool: Sequence[ArchCode]) -> List[str]:
    """Violations of the stratification rule (empty when the pool is valid; a fixed-arch run's pool is its code)."""
    if len(pool) == 1:
        return []
    problems = []
    if len(pool) % PATHS_PER_CYCLE:
        problems.append(f"pool size {len(pool)} is not a multiple of {PATHS_PER_CYCLE}")
    for g in range(len(pool) // PATHS_PER_CYCLE):
        group = pool[g * PATHS_PER_CYCLE:(g + 1) * PATHS_PER_CYCLE]
        for b in range(len(group[0])):
            if sorted(code[b] for code in group) != list(range(NUM_OPTIONS)):
                problems.append(f"group {g} block {b} does not use every option exactly once")
    if len(set(pool)) != len(pool):
        problems.append("pool contains a duplicate subnet")
    return problems


def load_pool(path: Path) -> Tuple[int, Tuple[ArchCode, ...]]:
    """Read a saved pool back as (seed, codes); CheckpointError if missing or not stratified."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        seed = int(doc["seed"])
        pool = tuple(tuple(int(v) for v in s["arch_code"]) for s in doc["subnets"])
    except FileNotFoundError:
        raise CheckpointError(f"evaluation pool {path} is missing from the run directory") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"evaluation pool {path} is unreadable: {exc!r}") from None
    problems = check_pool(pool)
    if problems:
        raise CheckpointError(f"evaluation pool {path} is invalid: {'; '.join(problems)}")
    return seed, pool
