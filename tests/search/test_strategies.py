"""Strategies on a synthetic landscape: constraints before scoring, budget, determinism, resume equality."""

from __future__ import annotations

import numpy as np
import pytest

from edgeflownas.errors import SearchError
from edgeflownas.search.space import CostTable, SearchSpace, feasible_codes, parse_constraint, parse_fixed
from edgeflownas.search.strategies import STRATEGIES, StrategySettings, run_strategy, select_parents

# A made-up additive cost: option o of block b costs (b + 1) * o * 1000 MACs over a 5000-MAC stem.
TABLE = CostTable(8, 8, (100, 5000), tuple(tuple((10 * o, (b + 1) * o * 1000) for o in range(3)) for b in range(9)))


def landscape(code):
    """A deterministic 'EPE' that falls with cost and has some interaction, so there is a real front."""
    weights = np.linspace(1.0, 0.2, 9)
    return float(3.0 - np.dot(weights, code) * 0.1 + 0.05 * ((code[0] * code[8]) % 3))


class Scorer:
    """Scores codes with ``landscape``, remembers every call, and can die after ``crash_after`` scores."""

    def __init__(self, constraint=None, cache=None, crash_after=None):
        self.calls, self.constraint, self.cache, self.crash_after = [], constraint, cache, crash_after

    def __call__(self, batch):
        out = {}
        for code in batch:
            assert self.constraint is None or self.constraint.holds(TABLE.cost(code)), "infeasible code scored"
            if self.cache is not None and code in self.cache:
                out[code] = self.cache[code]
                continue
            if self.crash_after is not None and len(self.calls) >= self.crash_after:
                raise KeyboardInterrupt("killed")
            self.calls.append(code)
            out[code] = landscape(code)
            if self.cache is not None:
                self.cache[code] = out[code]
        return out


@pytest.mark.parametrize("strategy", [name for name, s in STRATEGIES.items() if not s.whole_space])
def test_budget_feasibility_and_no_duplicates(strategy):
    space = parse_fixed(["EB0=0", "H4=2"])
    constraint = parse_constraint("macs<=40000")
    feasible = feasible_codes(space, TABLE, [constraint])
    scorer = Scorer(constraint)
    scores = run_strategy(StrategySettings(strategy, budget=60, seed=1, population=12, parents=4),
                          space, TABLE, feasible, scorer)
    assert len(scores) == 60 == len(set(scorer.calls)) == len(scorer.calls)
    assert all(code[0] == 0 and code[8] == 2 for code in scores)


def test_exhaustive_scores_every_feasible_code_once():
    space = parse_fixed(["EB0=0", "EB1=1", "DB0=2", "DB1=0", "H0=1"])
    feasible = feasible_codes(space, TABLE, [])
    scores = run_strategy(StrategySettings("exhaustive", budget=1, population=10), space, TABLE, feasible, Scorer())
    assert sorted(scores) == sorted(feasible) and len(feasible) == 81


def test_same_seed_same_result_and_a_crash_resumes_to_it():
    space = SearchSpace()
    settings = StrategySettings("evolution", budget=80, seed=5, population=16, parents=6)
    feasible = feasible_codes(space, TABLE, [])
    whole = run_strategy(settings, space, TABLE, feasible, Scorer())
    assert run_strategy(settings, space, TABLE, feasible, Scorer()) == whole
    store = {}
    with pytest.raises(KeyboardInterrupt):
        run_strategy(settings, space, TABLE, feasible, Scorer(cache=store, crash_after=37))
    resumed = Scorer(cache=store)
    assert run_strategy(settings, space, TABLE, feasible, resumed) == whole
    assert len(resumed.calls) == 80 - 37
    assert run_strategy(StrategySettings("evolution", budget=80, seed=6, population=16, parents=6),
                        space, TABLE, feasible, Scorer()) != whole


def test_parents_prefer_the_front_then_epe():
    scores = {(0,) * 9: 3.0, (1,) * 9: 2.0, (2,) * 9: 1.0, (0, 1, 0, 0, 0, 0, 0, 0, 0): 3.5}
    # (0,1,0,...) costs more than 000000000 and scores worse: dominated, so last.
    assert select_parents(scores, TABLE, 4) == [(2,) * 9, (1,) * 9, (0,) * 9, (0, 1, 0, 0, 0, 0, 0, 0, 0)]


def test_evolution_beats_random_on_the_landscape_front():
    from edgeflownas.nas.pareto import hypervolume

    space = SearchSpace()
    feasible = feasible_codes(space, TABLE, [])
    reference = (3.1, 50000.0)

    def volume(scores):
        return hypervolume([(epe, TABLE.cost(c)["macs"]) for c, epe in scores.items()], reference)

    evo = np.mean([volume(run_strategy(StrategySettings("evolution", 150, s, 20, 8), space, TABLE, feasible,
                                       Scorer())) for s in range(3)])
    rnd = np.mean([volume(run_strategy(StrategySettings("random", 150, s, 20, 8), space, TABLE, feasible,
                                       Scorer())) for s in range(3)])
    assert evo > rnd


@pytest.mark.parametrize("text, message", [
    ("flops<=1e9", "unknown key 'flops'"), ("macs<1e9", "expected KEY<=NUMBER"), ("macs<=nan", "expected KEY"),
    ("macs<=1e999", "finite")])
def test_bad_constraints(text, message):
    with pytest.raises(SearchError, match=message):
        parse_constraint(text)


def test_impossible_constraint_and_bad_budget_are_clear():
    with pytest.raises(SearchError, match=r"no code of the 19683-code space meets macs<=10 .*span macs 5000\.\."):
        feasible_codes(SearchSpace(), TABLE, [parse_constraint("macs<=10")])
    with pytest.raises(SearchError, match="--budget 0"):
        run_strategy(StrategySettings(budget=0), SearchSpace(), TABLE, [(0,) * 9], Scorer())
    with pytest.raises(SearchError, match="--fix"):
        parse_fixed(["XX=1"])


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_registered_strategy_is_deterministic_feasible_and_offered_by_the_cli(strategy):
    from click.testing import CliRunner

    from edgeflownas.cli import main

    space = parse_fixed(["EB0=0", "EB1=1", "DB0=2", "DB1=0", "H0=1"])
    constraint = parse_constraint("macs<=40000")
    feasible = feasible_codes(space, TABLE, [constraint])
    settings = StrategySettings(strategy, budget=12, seed=4, population=5)
    first = run_strategy(settings, space, TABLE, feasible, Scorer(constraint))
    assert first == run_strategy(settings, space, TABLE, feasible, Scorer(constraint))
    assert set(first) <= set(feasible) and len(first) == (len(feasible) if STRATEGIES[strategy].whole_space else 12)
    help_text = CliRunner().invoke(main, ["search", "--help"]).output
    assert strategy in help_text
