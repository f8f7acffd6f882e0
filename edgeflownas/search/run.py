"""``run_search``: a trained supernet -> scored candidates in the store -> Pareto fronts on disk.

Scoring a candidate is what ``efnas eval`` does: one ``CheckpointEvaluator``
(one graph, one session, the run's fixed BN-recalibration and validation
batches) for the whole search, ``epe(code)`` per candidate.  Every result goes
to the store before the next candidate starts, keyed by (checkpoint sha256,
code, scoring settings), so a killed or requeued search re-runs the same
command and continues; the strategy's proposals are deterministic in the
seed, so it ends as an uninterrupted run would.  The 12 pool subnets and the
EdgeFlowNet baseline are scored too (outside the budget) to be marked in
the outputs.  With ``val_batches`` below the run's count the search scores on
that subset and re-scores both fronts on all validation batches.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from edgeflownas.atomic_io import write_json_atomic
from edgeflownas.errors import SearchError, SearchUsageError
from edgeflownas.locks import exclusive_lock
from edgeflownas.nas.arch_codec import BLOCK_NAMES, EDGEFLOWNET_BASELINE, ArchCode, arch_name
from edgeflownas.nas.eval_pool import load_pool, pool_file_name
from edgeflownas.search import front as fr
from edgeflownas.search.space import CostTable, feasible_codes, parse_constraint, parse_fixed
from edgeflownas.search.store import ResultStore
from edgeflownas.search.strategies import StrategySettings, run_strategy
from edgeflownas.train import checkpoint

STORE_DIR = "store"
COST_TABLE_FILE = "cost_table.json"


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


def cost_table(out_dir: Path, height: int, width: int, model_cfg) -> CostTable:
    """The cost table for this input size and model, counted once and cached in the search directory."""
    path = Path(out_dir) / COST_TABLE_FILE
    key = {"height": height, "width": width, "model": asdict(model_cfg)}
    key["model"].pop("fixed_arch_code", None)
    if path.is_file():
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("key") == json.loads(json.dumps(key)):
            return CostTable.from_dict(doc["table"])
    table = CostTable.build(height, width, model_cfg)
    write_json_atomic(path, {"key": key, "table": table.to_dict()})
    return table


class LocalEvaluation:
    """Evaluates candidates in this process: one CheckpointEvaluator (graph, session, batches), opened on first use."""

    def __init__(self, run_dir: Path, which: str, data_overrides: Mapping[str, Any], table: CostTable,
                 expected_sha: str) -> None:
        self.run_dir, self.which, self.data_overrides = Path(run_dir), which, dict(data_overrides)
        self.table, self.expected_sha = table, expected_sha
        self.evaluator = None
        self.evaluated, self.seconds = 0, 0.0

    def __call__(self, codes: Sequence[ArchCode], scoring: Mapping[str, Any], store: ResultStore) -> None:
        """Score ``codes`` into ``store``, each result appended before the next candidate starts."""
        evaluator = self._open()
        for code in codes:
            started = time.perf_counter()
            epe = evaluator.epe(code, scoring["val_batches"])
            seconds = time.perf_counter() - started
            self.evaluated += 1
            self.seconds += seconds
            store.add(dict(fr.entry(code, epe, self.table.cost(code)), checkpoint_sha256=self.expected_sha,
                           scoring=dict(scoring), seconds=round(seconds, 4)))

    def _open(self):
        from edgeflownas.train.checkpoint_eval import CheckpointEvaluator

        if self.evaluator is None:
            evaluator = CheckpointEvaluator(self.run_dir, self.which, lambda line: None, self.data_overrides)
            evaluator.__enter__()
            self.evaluator = evaluator
            found = checkpoint.weights_sha256(evaluator.ckpt_dir)
            if found != self.expected_sha:
                self.close()
                raise SearchError(f"{evaluator.ckpt_dir} changed since the search started (sha256 {found[:12]} != "
                                  f"{self.expected_sha[:12]}): is the run still training? search a finished run, "
                                  "or a copy of the checkpoint")
        return self.evaluator

    def close(self) -> None:
        """Close the evaluator's session and data sources."""
        if self.evaluator is not None:
            self.evaluator.close()
            self.evaluator = None


# Scores candidates into the store (this process, or a SLURM job array): (codes, scoring, store) -> None.
Evaluation = Callable[[Sequence[ArchCode], Mapping[str, Any], ResultStore], None]


class Scorer:
    """Score codes through the store: stored results are reused, the missing ones handed to ``evaluation``."""

    def __init__(self, store: ResultStore, sha: str, scoring: Mapping[str, Any], evaluation: Evaluation) -> None:
        self.store, self.sha, self.scoring, self.evaluation = store, sha, dict(scoring), evaluation

    def __call__(self, codes: Sequence[ArchCode]) -> Dict[ArchCode, float]:
        missing = list(dict.fromkeys(tuple(c) for c in codes if self.store.get(self.sha, c, self.scoring) is None))
        if missing:
            self.evaluation(missing, self.scoring, self.store)
            self.store.reload()
        out = {}
        for code in codes:
            stored = self.store.get(self.sha, code, self.scoring)
            if stored is None:
                raise SearchError(f"candidate {arch_name(code)} was handed out for scoring but no result reached "
                                  f"{self.store.directory}: see the scoring jobs' logs")
            out[tuple(code)] = float(stored["epe"])
        return out


def _progress(log: Callable[[str], None], local: Optional[LocalEvaluation], started: float) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        elapsed = time.time() - started
        line = f"search: {done}/{total} candidates scored, {elapsed:.0f}s elapsed"
        if local is not None and local.evaluated:
            per = local.seconds / local.evaluated
            line += f" ({local.evaluated} evaluated here, {per:.2f} s each, ETA {per * (total - done):.0f}s)"
        log(line)
    return report


def run_search(request: SearchRequest, log: Callable[[str], None] = lambda line: None,
               remote: Optional[Evaluation] = None) -> Dict[str, Any]:
    """Run the search ``request`` describes; returns the front document (also written to ``out_dir``).

    ``remote`` scores candidates elsewhere (a SLURM job array writing to the same store); by default they are
    scored in this process.
    """
    from edgeflownas.train.checkpoint_eval import checkpoint_dir
    from edgeflownas.train.plan import plan_from_state

    request.settings.check()
    constraints = [parse_constraint(text) for text in request.constraints]
    space = parse_fixed(request.fixed)
    if request.val_batches is not None and request.val_batches < 1:
        raise SearchUsageError(f"--val_batches {request.val_batches}: score on at least 1 validation batch")
    ckpt_dir = checkpoint_dir(Path(request.run_dir), request.which)
    state = checkpoint.read_state(ckpt_dir)
    plan = plan_from_state(state, ckpt_dir)
    model, data = search_config(state, ckpt_dir)
    out_dir = Path(request.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir, f"efnas search of {request.run_dir}", log):
        table = cost_table(out_dir, data["input_height"], data["input_width"], model)
        feasible = feasible_codes(space, table, constraints)
        full = plan.val_batches
        base = {"checkpoint": request.which, "bn_recal_batches": plan.recal_batches,
                "eval_batch_size": plan.eval_batch_size}
        scoring = dict(base, val_batches=min(request.val_batches or full, full))
        sha = checkpoint.weights_sha256(ckpt_dir)
        store = ResultStore(out_dir / STORE_DIR)
        local = LocalEvaluation(request.run_dir, request.which, request.data_overrides, table, sha)
        evaluation = remote or local
        scorer = Scorer(store, sha, scoring, evaluation)
        log(f"search: {request.settings.strategy} over {len(feasible)} feasible of {space.size} codes, budget "
            f"{request.settings.budget}, scoring on {scoring['val_batches']}/{full} val batches, checkpoint "
            f"{ckpt_dir} (epoch {state['epoch']}, sha256 {sha[:12]})")
        try:
            scores = run_strategy(request.settings, space, table, feasible, scorer,
                                  _progress(log, None if remote else local, time.time()))
            pool = load_pool(Path(request.run_dir) / pool_file_name(plan.pool_size))[1]
            marked = scorer(list(pool) + [EDGEFLOWNET_BASELINE])
            scored = [fr.entry(code, epe, table.cost(code)) for code, epe in scores.items()]
            fronts = fr.fronts(scored)
            if scoring["val_batches"] < full:
                rescorer = Scorer(store, sha, dict(base, val_batches=full), evaluation)
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
                  "checkpoint_sha256": sha, "epoch": state["epoch"], "global_step": state["global_step"],
                  "input_hw": [data["input_height"], data["input_width"]], "scoring": scoring,
                  "front_scoring": dict(base, val_batches=full), "strategy": asdict(request.settings),
                  "constraints": [str(c) for c in constraints],
                  "fixed_blocks": {BLOCK_NAMES[block]: option for block, option in sorted(space.fixed.items())},
                  "space_size": space.size, "feasible": len(feasible),
                  "seconds_per_candidate": round(local.seconds / local.evaluated, 4) if local.evaluated else None}
        return fr.write_outputs(out_dir, header, scored, fronts["macs"], fronts["params"], marks)


def search_config(state: Mapping[str, Any], ckpt_dir: Path) -> Tuple[Any, Dict[str, Any]]:
    """(ModelConfig, data section) of the config a checkpoint was trained with."""
    from edgeflownas.config import resolve_mapping

    resolved = resolve_mapping(state.get("config", {}), {}, origin=f"config stored in {ckpt_dir}")
    return resolved.config.model, resolved.values["data"]


def score_codes(run_dir: Path, which: str, out_dir: Path, codes: Sequence[ArchCode], scoring: Mapping[str, Any],
                expected_sha: str, data_overrides: Mapping[str, Any], writer: str) -> int:
    """Score ``codes`` into the search store as writer ``writer`` (a SLURM array task); returns how many were new."""
    store = ResultStore(Path(out_dir) / STORE_DIR, writer=writer)
    todo = [tuple(c) for c in codes if store.get(expected_sha, tuple(c), scoring) is None]
    if not todo:
        return 0
    table = CostTable.from_dict(json.loads((Path(out_dir) / COST_TABLE_FILE).read_text(encoding="utf-8"))["table"])
    local = LocalEvaluation(run_dir, which, data_overrides, table, expected_sha)
    try:
        local(todo, scoring, store)
    finally:
        local.close()
    return len(todo)
