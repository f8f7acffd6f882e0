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

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from edgeflownas.atomic_io import write_json_atomic
from edgeflownas.errors import SearchError
from edgeflownas.locks import exclusive_lock
from edgeflownas.nas.arch_codec import BLOCK_NAMES, EDGEFLOWNET_BASELINE, ArchCode
from edgeflownas.nas.eval_pool import load_pool, pool_file_name
from edgeflownas.search import front as fr
from edgeflownas.search.space import CostTable, SearchSpace, feasible_codes, parse_constraint, parse_fixed
from edgeflownas.search.store import ResultStore
from edgeflownas.search.strategies import StrategySettings, run_strategy

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


def checkpoint_sha256(ckpt_dir: Path) -> str:
    """sha256 over the TF variable files of a checkpoint directory (its weights, not its counters)."""
    digest = hashlib.sha256()
    for path in sorted(Path(ckpt_dir).glob("model.*")):
        digest.update(path.name.encode("utf-8"))
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cost_table(out_dir: Path, height: int, width: int, model_cfg) -> CostTable:
    """The cost table for this input size and model, counted once and cached in the search directory."""
    path = Path(out_dir) / COST_TABLE_FILE
    key = {"height": height, "width": width, "model": asdict(model_cfg)}
    key["model"].pop("fixed_arch_code", None)
    if path.is_file():
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("key") == json.loads(json.dumps(key)):
            table = doc["table"]
            return CostTable(table["height"], table["width"], tuple(table["stem"]),
                             tuple(tuple(tuple(c) for c in options) for options in table["blocks"]))
    table = CostTable.build(height, width, model_cfg)
    write_json_atomic(path, {"key": key, "table": table.to_dict()})
    return table


class Scorer:
    """Score codes through the store: stored results are reused, new ones evaluated and appended at once."""

    def __init__(self, evaluator, store: ResultStore, sha: str, scoring: Mapping[str, Any], table: CostTable,
                 log: Callable[[str], None]) -> None:
        self.evaluator, self.store, self.sha, self.scoring = evaluator, store, sha, dict(scoring)
        self.table, self.log = table, log
        self.evaluated = 0
        self.seconds = 0.0

    def __call__(self, codes: Sequence[ArchCode]) -> Dict[ArchCode, float]:
        out = {}
        for code in codes:
            stored = self.store.get(self.sha, code, self.scoring)
            if stored is None:
                started = time.perf_counter()
                epe = self.evaluator.epe(code, self.scoring["val_batches"])
                seconds = time.perf_counter() - started
                self.evaluated += 1
                self.seconds += seconds
                stored = dict(fr.entry(code, epe, self.table.cost(code)), checkpoint_sha256=self.sha,
                              scoring=self.scoring, seconds=round(seconds, 4))
                self.store.add(stored)
            out[tuple(code)] = float(stored["epe"])
        return out


def _progress(log: Callable[[str], None], scorer: Scorer, started: float) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        elapsed = time.time() - started
        per = scorer.seconds / scorer.evaluated if scorer.evaluated else 0.0
        log(f"search: {done}/{total} candidates scored ({scorer.evaluated} evaluated now, {per:.2f} s each, "
            f"{elapsed:.0f}s elapsed, ETA {per * (total - done):.0f}s)")
    return report


def run_search(request: SearchRequest, log: Callable[[str], None] = lambda line: None) -> Dict[str, Any]:
    """Run the search ``request`` describes; returns the front document (also written to ``out_dir``)."""
    from edgeflownas.report.checkpoint_eval import CheckpointEvaluator

    request.settings.check()
    constraints = [parse_constraint(text) for text in request.constraints]
    space = parse_fixed(request.fixed)
    if request.val_batches is not None and request.val_batches < 1:
        raise SearchError(f"--val_batches {request.val_batches}: score on at least 1 validation batch")
    out_dir = Path(request.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir, f"efnas search of {request.run_dir}", log), \
            CheckpointEvaluator(request.run_dir, request.which, lambda line: None,
                                dict(request.data_overrides)) as evaluator:
        data = evaluator.resolved.config.data
        table = cost_table(out_dir, data.input_height, data.input_width, evaluator.resolved.config.model)
        feasible = feasible_codes(space, table, constraints)
        full = len(evaluator.val_batches)
        base = {"checkpoint": request.which, "bn_recal_batches": evaluator.plan.recal_batches,
                "eval_batch_size": evaluator.plan.eval_batch_size}
        scoring = dict(base, val_batches=min(request.val_batches or full, full))
        sha = checkpoint_sha256(evaluator.ckpt_dir)
        store = ResultStore(out_dir / STORE_DIR)
        scorer = Scorer(evaluator, store, sha, scoring, table, log)
        log(f"search: {request.settings.strategy} over {len(feasible)} feasible of {space.size} codes, budget "
            f"{request.settings.budget}, scoring on {scoring['val_batches']}/{full} val batches, checkpoint "
            f"{evaluator.ckpt_dir} (epoch {evaluator.epoch}, sha256 {sha[:12]})")
        scores = run_strategy(request.settings, space, table, feasible, scorer, _progress(log, scorer, time.time()))
        pool = load_pool(Path(request.run_dir) / pool_file_name(evaluator.plan.pool_size))[1]
        marked = scorer(list(pool) + [EDGEFLOWNET_BASELINE])
        scored = [fr.entry(code, epe, table.cost(code)) for code, epe in scores.items()]
        fronts = fr.fronts(scored)
        if scoring["val_batches"] < full:
            rescorer = Scorer(evaluator, store, sha, dict(base, val_batches=full), table, log)
            for key in fronts:
                full_epe = rescorer([tuple(e["arch_code"]) for e in fronts[key]])
                fronts[key] = [dict(e, epe_search=e["epe"], epe=full_epe[tuple(e["arch_code"])]) for e in fronts[key]]
        marks = {"pool": [fr.entry(code, marked[code], table.cost(code)) for code in pool],
                 "baseline": [fr.entry(EDGEFLOWNET_BASELINE, marked[EDGEFLOWNET_BASELINE],
                                       table.cost(EDGEFLOWNET_BASELINE))]}
        header = {"run_dir": str(Path(request.run_dir).resolve()), "checkpoint": request.which,
                  "checkpoint_sha256": sha, "epoch": evaluator.epoch, "global_step": evaluator.global_step,
                  "input_hw": [data.input_height, data.input_width], "scoring": scoring,
                  "front_scoring": dict(base, val_batches=full), "strategy": asdict(request.settings),
                  "constraints": [str(c) for c in constraints],
                  "fixed_blocks": {BLOCK_NAMES[block]: option for block, option in sorted(space.fixed.items())},
                  "space_size": space.size, "feasible": len(feasible),
                  "seconds_per_candidate": round(scorer.seconds / scorer.evaluated, 4) if scorer.evaluated else None}
        return fr.write_outputs(out_dir, header, scored, fronts["macs"], fronts["params"], marks)
