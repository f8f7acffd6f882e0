"""``run_search``: a trained supernet -> scored candidates in the store -> Pareto fronts on disk.

The run is read once (``TrainedRun``): its checkpoint, verified weights
digest, config, pool, exact cost table and scoring settings.  Scoring a
candidate is what ``efnas eval`` does: one ``CheckpointEvaluator`` (one graph,
one session, the run's fixed BN-recalibration and validation batches, drawn
with the run's own seed) for the whole search, ``epe(code)`` per candidate.
So a search's score of a subnet is ``efnas eval``'s EPE of it, to the last
digit, whatever the strategy or its seed.

Every result goes to the store before the next candidate starts, keyed by
(checkpoint sha256, code, scoring settings: checkpoint, digest, recalibration
batches and the seed that draws them, batch size, validation batches), so a
killed or requeued search re-runs the same command and continues, and scores
made with other settings are kept apart, never reused; the strategy's
proposals are deterministic in its own seed (``--strategy_seed``), so it ends
as an uninterrupted run would.  The run's pool subnets and the EdgeFlowNet
baseline are scored too (outside the budget): the fronts are the
non-dominated sets of everything the search scored, those included (when
they meet the cost constraints).  With ``val_batches`` below the run's count
the search scores on that subset and re-scores both fronts on all
validation batches.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from edgeflownas.errors import SearchError, SearchUsageError
from edgeflownas.locks import exclusive_lock
from edgeflownas.nas import front as fr
from edgeflownas.nas.arch_codec import BLOCK_NAMES, EDGEFLOWNET_BASELINE, ArchCode, arch_name
from edgeflownas.progress import Progress
from edgeflownas.search.space import CostTable, feasible_codes, parse_constraint, parse_fixed
from edgeflownas.search.store import ResultStore
from edgeflownas.search.strategies import StrategySettings, run_strategy
from edgeflownas.train.trained_run import TrainedRun

STORE_DIR = "store"


@dataclass(frozen=True)
class SearchRequest:
    """Everything ``run_search`` needs, from the CLI or a launcher."""

    run_dir: Path
    out_dir: Path
    settings: StrategySettings = StrategySettings()
    constraints: Tuple[str, ...] = ()
    fixed: Tuple[str, ...] = ()
    which: str = "best"
    val_batches: Optional[int] = None
    data_overrides: Mapping[str, Any] = field(default_factory=dict)
    latency_table: Optional[Path] = None  # an efnas latency table: latency_ms beside MACs, --objective latency
    latency_precision: str = "float"
    latency_threads: Optional[int] = None  # default: the fewest threads the table measured


class LocalEvaluation:
    """Evaluates candidates in this process: one CheckpointEvaluator (graph, session, batches), opened on first use."""

    def __init__(self, run: TrainedRun) -> None:
        self.run = run
        self.evaluator = None
        self.evaluated, self.seconds = 0, 0.0

    def __call__(self, codes: Sequence[ArchCode], scoring: Mapping[str, Any], store: ResultStore) -> None:
        """Score ``codes`` into ``store``, each result appended before the next candidate starts."""
        check_scoring(self.run, scoring)
        evaluator = self._open()
        for code in codes:
            started = time.perf_counter()
            epe = evaluator.epe(code, scoring["val_batches"], scoring["recal_batches"])
            seconds = time.perf_counter() - started
            self.evaluated += 1
            self.seconds += seconds
            store.add(dict(fr.entry(code, epe, self.run.cost(code)), checkpoint_sha256=self.run.weights_sha256,
                           scoring=dict(scoring), seconds=round(seconds, 4)))

    def _open(self):
        if self.evaluator is None:
            evaluator = self.run.evaluator()
            evaluator.__enter__()
            self.evaluator = evaluator
        return self.evaluator

    def close(self) -> None:
        """Close the evaluator's session and data sources."""
        if self.evaluator is not None:
            self.evaluator.close()
            self.evaluator = None


def check_scoring(run: TrainedRun, scoring: Mapping[str, Any]) -> None:
    """SearchError unless ``scoring`` is the run's own scoring on some number of its validation batches, with BN
    recalibrated on the first 0 to all of its recalibration batches (a search uses all; the ranking study's
    ``scoring.recal_batches`` may use fewer, and scores each subnet without recalibration too)."""
    own = run.scoring(scoring.get("val_batches")).to_dict()
    recal = scoring.get("recal_batches")
    if isinstance(recal, int) and not isinstance(recal, bool) and 0 <= recal <= own["recal_batches"]:
        own["recal_batches"] = recal
    if dict(scoring) != own:
        changed = ", ".join(f"{key} {scoring.get(key)!r} != {own[key]!r}" for key in own if scoring.get(key) != own[key])
        raise SearchError(f"{run.ckpt_dir}: asked to score with other settings than the run's ({changed or 'keys'}): "
                          "the checkpoint changed since the search started? search a finished run, or a copy of it")


# Scores candidates into the store (this process, or a SLURM job array): (codes, scoring, store) -> None.
Evaluation = Callable[[Sequence[ArchCode], Mapping[str, Any], ResultStore], None]


class Scorer:
    """Score codes through the store: stored results are reused, the missing ones handed to ``evaluation``."""

    def __init__(self, store: ResultStore, sha: str, scoring: Mapping[str, Any], evaluation: Evaluation) -> None:
        self.store, self.sha, self.scoring, self.evaluation = store, sha, dict(scoring), evaluation
        self.new = 0  # codes handed to ``evaluation``: scored now, not found in the store

    def __call__(self, codes: Sequence[ArchCode]) -> Dict[ArchCode, float]:
        missing = list(dict.fromkeys(tuple(c) for c in codes if self.store.get(self.sha, c, self.scoring) is None))
        if missing:
            self.evaluation(missing, self.scoring, self.store)
            self.new += len(missing)
            self.store.reload()
        out = {}
        for code in codes:
            stored = self.store.get(self.sha, code, self.scoring)
            if stored is None:
                raise SearchError(f"candidate {arch_name(code)} was handed out for scoring but no result reached "
                                  f"{self.store.directory}: see the scoring jobs' logs")
            out[tuple(code)] = float(stored["epe"])
        return out


def _progress(log: Callable[[str], None], local: Optional[LocalEvaluation],
              scorer: Scorer) -> Callable[[int, int], None]:
    """The strategy's report after each generation as one progress line; the ETA is measured on new scores
    (here or by the job arrays), not on the ones the store held."""
    progress = Progress(0, what="candidates scored")

    def report(done: int, total: int) -> None:
        progress.total = total
        new = scorer.new - progress.done_here
        progress.advance(new, found=max(0, done - progress.done - new))
        line = f"search: {progress.line()}"
        if local is not None and local.evaluated:
            line += f" ({local.evaluated} evaluated here, {local.seconds / local.evaluated:.2f} s each)"
        log(line)
    return report


def run_search(request: SearchRequest, log: Callable[[str], None] = lambda line: None,
               remote: Optional[Evaluation] = None, run: Optional[TrainedRun] = None) -> Dict[str, Any]:
    """Run the search ``request`` describes; returns the front document (also written to ``out_dir``).

    ``remote`` scores candidates elsewhere (a SLURM job array writing to the same store); by default they are
    scored in this process.  ``run`` is the request's run if the caller has opened it already.
    """
    request.settings.check()
    constraints = [parse_constraint(text) for text in request.constraints]
    space = parse_fixed(request.fixed)
    if request.val_batches is not None and request.val_batches < 1:
        raise SearchUsageError(f"--val_batches {request.val_batches}: score on at least 1 validation batch")
    run = run or TrainedRun.open(Path(request.run_dir), request.which, request.data_overrides)
    if run.fixed_code is not None:
        raise SearchUsageError(f"{request.run_dir} is a fixed-arch run of {arch_name(run.fixed_code)}: it holds one "
                               "subnet, there is nothing to search; search the supernet run it came from")
    latency = search_latency(request, run, constraints)
    out_dir = Path(request.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir, f"efnas search of {request.run_dir}", log):
        table = run.cost_table(log) if latency is None else latency(run.cost_table(log))
        feasible = feasible_codes(space, table, constraints)
        full = run.plan.val_batches
        scoring = run.scoring(request.val_batches).to_dict()
        sha = run.weights_sha256
        store = ResultStore(out_dir / STORE_DIR)
        local = LocalEvaluation(run)
        evaluation = remote or local
        scorer = Scorer(store, sha, scoring, evaluation)
        log(f"search: {request.settings.strategy} (strategy seed {request.settings.seed}) over {len(feasible)} "
            f"feasible of {space.size} codes, budget {request.settings.budget}, scoring on "
            f"{scoring['val_batches']}/{full} val batches with {scoring['recal_batches']} BN-recalibration batches "
            f"(seed {scoring['recal_seed']}), {run.describe()}")
        try:
            scores = run_strategy(request.settings, space, table, feasible, scorer,
                                  _progress(log, None if remote else local, scorer))
            pool = run.pool()
            marked = scorer(list(pool) + [EDGEFLOWNET_BASELINE])
            scored = scored_entries(scores, marked, table, constraints)
            fronts = fr.fronts(scored)
            if scoring["val_batches"] < full:
                rescorer = Scorer(store, sha, run.scoring().to_dict(), evaluation)
                for key in fronts:
                    full_epe = rescorer([tuple(e["arch_code"]) for e in fronts[key]])
                    fronts[key] = [dict(e, epe_search=e["epe"], epe=full_epe[tuple(e["arch_code"])])
                                   for e in fronts[key]]
        finally:
            local.close()
        marks = {"pool": [fr.entry(code, marked[code], table.cost(code)) for code in pool],
                 "baseline": [fr.entry(EDGEFLOWNET_BASELINE, marked[EDGEFLOWNET_BASELINE],
                                       table.cost(EDGEFLOWNET_BASELINE))]}
        header = {"run_dir": str(Path(request.run_dir).resolve()), "checkpoint": request.which,
                  "checkpoint_sha256": sha, "epoch": run.epoch, "global_step": run.global_step,
                  "input_hw": list(run.input_hw), "scoring": scoring,
                  "front_scoring": run.scoring().to_dict(), "strategy": asdict(request.settings),
                  "constraints": [str(c) for c in constraints],
                  "fixed_blocks": {BLOCK_NAMES[block]: option for block, option in sorted(space.fixed.items())},
                  "space_size": space.size, "feasible": len(feasible), "searched": len(scores),
                  "seconds_per_candidate": round(local.seconds / local.evaluated, 4) if local.evaluated else None}
        if hasattr(table, "describe"):
            header["latency"] = table.describe()
        return fr.write_outputs(out_dir, header, scored, fronts["macs"], fronts["params"], marks,
                                fronts.get("latency_ms"), request.settings.objective)


def search_latency(request: SearchRequest, run: TrainedRun, constraints: Sequence[Any]):
    """None, or a function wrapping the run's cost table with the request's latency table (read and checked
    against the run here, before anything is locked or scored); SearchError for latency asked without a table."""
    from edgeflownas.latency.table import LatencyCosts, read_table

    if request.latency_table is None:
        if request.settings.objective == "latency":
            raise SearchUsageError("--objective latency needs --latency_table TABLE.json (written by efnas latency for "
                              "this run's input size and model)")
        bound = [str(c) for c in constraints if c.key == "latency"]
        if bound:
            raise SearchUsageError(f"--constraint {bound[0]} needs a latency table: give --latency_table TABLE.json "
                              "(written by efnas latency for this run)")
        return None
    table = read_table(Path(request.latency_table))
    table.check_matches(*run.input_hw, run.config.model, f"run {request.run_dir}")
    table.entry(request.latency_precision, request.latency_threads)
    return lambda costs: LatencyCosts(costs, table, request.latency_precision, request.latency_threads)


def scored_entries(scores: Mapping[ArchCode, float], marked: Mapping[ArchCode, float], table: CostTable,
                   constraints: Sequence[Any]) -> List[Dict[str, Any]]:
    """Every subnet the search scored, in scoring order: the strategy's candidates, then the pool subnets and the
    baseline that meet the constraints (``marked`` says which each is); the fronts are taken over all of them."""
    entries = [fr.entry(code, epe, table.cost(code)) for code, epe in scores.items()]
    for code, epe in marked.items():
        cost = table.cost(code)
        if code not in scores and all(c.holds(cost) for c in constraints):
            label = "baseline" if code == EDGEFLOWNET_BASELINE else "pool"
            entries.append(fr.entry(code, epe, cost, marked=label))
    return entries


def score_codes(run_dir: Path, which: str, out_dir: Path, codes: Sequence[ArchCode], scoring: Mapping[str, Any],
                data_overrides: Mapping[str, Any], writer: str) -> int:
    """Score ``codes`` into the search store as writer ``writer`` (a SLURM array task); returns how many were new.

    The task opens the run itself and refuses to score if its weights or scoring settings are not ``scoring``'s.
    """
    store = ResultStore(Path(out_dir) / STORE_DIR, writer=writer)
    todo = [tuple(c) for c in codes if store.get(scoring["checkpoint_sha256"], tuple(c), scoring) is None]
    if not todo:
        return 0
    local = LocalEvaluation(TrainedRun.open(Path(run_dir), which, data_overrides))
    try:
        local(todo, scoring, store)
    finally:
        local.close()
    return len(todo)
