"""Search strategies: evolution (SPOS-style, two objectives), random and exhaustive, under cost constraints.

Every strategy proposes candidates a generation at a time and asks
``score_batch`` for their EPE (a batch can be one process or one SLURM job
array); codes violating a constraint are never proposed, so never scored.
Proposals are pure functions of (seed, generation, scores so far), so a
search re-run over a store that already holds some scores proposes the same
codes, finds them scored, and ends with the same result as an uninterrupted
run.  ``budget`` counts distinct scored codes.  Strategies are registered in
``STRATEGIES`` (the CLI's choice, its help and the tests read it): a new one
is a ``propose`` function and one registry line.

Evolution: generation 0 is ``population`` uniform feasible codes; after each
generation the ``parents`` best scored codes - by non-dominated rank on (EPE,
the cost ``objective``: MACs, or latency from a latency table), then EPE - breed the next: half by per-block mutation of one parent,
half by uniform crossover of two.  A child already scored, infeasible or
already in the generation is redrawn; when the space runs short of new
children, uniform feasible codes not yet scored fill the generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from edgeflownas.errors import SearchUsageError
from edgeflownas.nas.arch_codec import ArchCode
from edgeflownas.nas.pareto import pareto_ranks
from edgeflownas.search.space import CostTable, SearchSpace

# --objective -> the cost entry EPE is traded against (latency: ms predicted by a latency table)
OBJECTIVES = {"macs": "macs", "latency": "latency_ms"}
ScoreBatch = Callable[[Sequence[ArchCode]], Mapping[ArchCode, float]]
_TRIES_PER_CHILD = 50


@dataclass(frozen=True)
class StrategySettings:
    """How a strategy proposes: budget (distinct scored codes), seed, and evolution's knobs."""

    strategy: str = "evolution"
    budget: int = 100
    seed: int = 0
    population: int = 20
    parents: Optional[int] = None  # evolution's top-k; None: half the population
    mutation_probability: float = 0.1
    objective: str = "macs"  # the cost traded against EPE: a key of OBJECTIVES

    @property
    def top_k(self) -> int:
        """How many of the best scored codes breed (evolution)."""
        return self.parents if self.parents is not None else max(1, self.population // 2)

    def check(self) -> None:
        """SearchError for settings no search can run with."""
        if self.strategy not in STRATEGIES:
            raise SearchUsageError(f"--strategy {self.strategy!r}: expected one of {', '.join(STRATEGIES)}")
        if self.budget <= 0:
            raise SearchUsageError(f"--budget {self.budget}: the budget is the number of candidates to score, "
                              "it must be at least 1")
        if self.population < 2:
            raise SearchUsageError(f"--population {self.population}: a generation needs at least 2 candidates")
        if self.strategy == "evolution" and not 1 <= self.top_k <= self.population:
            raise SearchUsageError(f"--parents {self.top_k}: expected 1 .. population ({self.population})")
        if self.objective not in OBJECTIVES:
            raise SearchUsageError(f"--objective {self.objective!r}: expected one of {', '.join(OBJECTIVES)}")
        if not 0.0 < self.mutation_probability <= 1.0:
            raise SearchUsageError(f"mutation probability {self.mutation_probability}: expected a value in (0, 1]")


def run_strategy(settings: StrategySettings, space: SearchSpace, table: CostTable, feasible: Sequence[ArchCode],
                 score_batch: ScoreBatch, progress: Optional[Callable[[int, int], None]] = None) -> Dict[ArchCode, float]:
    """Score candidates until the budget (or the feasible set) is used up; code -> EPE in scoring order."""
    settings.check()
    strategy = STRATEGIES[settings.strategy]
    proposal = Proposal(settings, space, table, list(feasible), set(feasible))
    scores: Dict[ArchCode, float] = {}
    limit = len(proposal.feasible) if strategy.whole_space else min(settings.budget, len(proposal.feasible))
    generation = 0
    while len(scores) < limit:
        rng = np.random.default_rng([settings.seed, generation])
        room = min(settings.population, limit - len(scores))
        batch = strategy.propose(proposal, scores, room, generation, rng)
        results = score_batch(batch)
        for code in batch:
            scores[code] = float(results[code])
        generation += 1
        if progress is not None:
            progress(len(scores), limit)
    return scores


@dataclass(frozen=True)
class Proposal:
    """What a strategy proposes from: its settings, the space, the cost table and the feasible codes."""

    settings: StrategySettings
    space: SearchSpace
    table: CostTable
    feasible: List[ArchCode]
    allowed: set


# (proposal, scores so far, room, generation, rng) -> the next batch of distinct feasible codes not yet scored.
Propose = Callable[[Proposal, Mapping[ArchCode, float], int, int, np.random.Generator], List[ArchCode]]


@dataclass(frozen=True)
class Strategy:
    """A registered search strategy: how it proposes, whether it scores the whole feasible set, its help line."""

    propose: Propose
    help: str
    whole_space: bool = False


def _exhaustive(proposal: Proposal, scores: Mapping[ArchCode, float], room: int, generation: int,
                rng: np.random.Generator) -> List[ArchCode]:
    return [c for c in proposal.feasible if c not in scores][:room]


def _random(proposal: Proposal, scores: Mapping[ArchCode, float], room: int, generation: int,
            rng: np.random.Generator) -> List[ArchCode]:
    return _fill([], room, proposal.feasible, scores, rng)


def _evolution(proposal: Proposal, scores: Mapping[ArchCode, float], room: int, generation: int,
               rng: np.random.Generator) -> List[ArchCode]:
    if generation == 0:
        return _fill([], room, proposal.feasible, scores, rng)
    return _breed(proposal.settings, proposal.space, proposal.allowed, proposal.feasible, proposal.table, scores,
                  room, rng)


def select_parents(scores: Mapping[ArchCode, float], table: CostTable, count: int,
                   objective: str = "macs") -> List[ArchCode]:
    """The ``count`` best scored codes by non-dominated rank on (EPE, the objective's cost), then EPE, then code."""
    codes = list(scores)
    ranks = pareto_ranks([(scores[c], float(table.cost(c)[OBJECTIVES[objective]])) for c in codes])
    order = sorted(range(len(codes)), key=lambda i: (ranks[i], scores[codes[i]], codes[i]))
    return [codes[i] for i in order[:count]]


def _fill(batch: List[ArchCode], room: int, feasible: Sequence[ArchCode], scores: Mapping[ArchCode, float],
          rng: np.random.Generator) -> List[ArchCode]:
    """Top ``batch`` up to ``room`` codes with uniform feasible codes not yet scored or chosen."""
    unused = [c for c in feasible if c not in scores and c not in batch]
    picks = rng.choice(len(unused), size=min(room - len(batch), len(unused)), replace=False)
    return batch + [unused[i] for i in sorted(picks)]


def _breed(settings: StrategySettings, space: SearchSpace, allowed: set, feasible: Sequence[ArchCode],
           table: CostTable, scores: Mapping[ArchCode, float], room: int, rng: np.random.Generator) -> List[ArchCode]:
    """One generation of children of the best scored codes (mutation half, crossover half)."""
    parents = select_parents(scores, table, settings.top_k, settings.objective)
    batch: List[ArchCode] = []
    for slot in range(room):
        for _ in range(_TRIES_PER_CHILD):
            if slot < room // 2 or len(parents) < 2:
                child = space.mutate(parents[int(rng.integers(len(parents)))], rng, settings.mutation_probability)
            else:
                first, second = rng.choice(len(parents), size=2, replace=False)
                child = space.crossover(parents[int(first)], parents[int(second)], rng)
            if child in allowed and child not in scores and child not in batch:
                batch.append(child)
                break
    return _fill(batch, room, feasible, scores, rng)


# The registry: the CLI's --strategy choice and help, and the parametrised strategy tests, read it.
STRATEGIES: Dict[str, Strategy] = {
    "evolution": Strategy(_evolution, "SPOS-style, two objectives: breeds the non-dominated best scored codes"),
    "random": Strategy(_random, "uniform feasible codes: the baseline to beat"),
    "exhaustive": Strategy(_exhaustive, "every feasible code (small spaces; --budget ignored)", whole_space=True),
}
