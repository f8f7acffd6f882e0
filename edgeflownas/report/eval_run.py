"""``efnas eval`` as a library: which subnets, evaluated at which checkpoint, as rows and a table.

A selection is a list of entries; each entry is ``pool`` (the run's
evaluation pool), ``baseline`` (EdgeFlowNet, ``0,0,0,0,2,1,2,2,2``) or an arch
code in any form ``parse_arch_code`` accepts.  Several entries are separated
by ``;`` (or given as repeated options); compact names may also be separated
by commas (``a000021222,a012001210``).  Duplicates are evaluated once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from edgeflownas.errors import ArchCodeError
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, NAME_PREFIX, ArchCode, arch_name, parse_arch_code
from edgeflownas.nas.eval_pool import load_pool, pool_file_name
from edgeflownas.search.front import select_code
from edgeflownas.train import checkpoint, run_dir as run_dir_format
from edgeflownas.train.checkpoint_eval import CheckpointEvaluator, checkpoint_dir

KEYWORDS = ("pool", "baseline")


def split_selection(texts: Sequence[str]) -> List[str]:
    """The individual entries of one or more ``--arch`` values."""
    entries: List[str] = []
    for text in texts:
        for part in (p.strip() for p in text.split(";")):
            if not part:
                continue
            tokens = [t.strip() for t in part.split(",")]
            if len(tokens) > 1 and all(t.startswith(NAME_PREFIX) or t in KEYWORDS for t in tokens):
                entries.extend(tokens)
            else:
                entries.append(part)
    if not entries:
        raise ArchCodeError("--arch is empty: give 'pool', 'baseline' or arch codes such as "
                            "'0,0,0,0,2,1,2,2,2' (several separated by ';')")
    return entries


def resolve_selection(texts: Sequence[str], pool_loader: Callable[[], Sequence[ArchCode]],
                      select: Callable[[str], ArchCode] = parse_arch_code) -> List[ArchCode]:
    """Arch codes of a selection, in order, without duplicates; the pool is read only if asked for.

    ``select`` reads every other entry (``parse_arch_code``; with a run, ``search.front.select_code`` also
    takes ``best`` / ``rank:N`` of its search front).
    """
    codes: List[ArchCode] = []
    for entry in split_selection(texts):
        if entry == "pool":
            found = list(pool_loader())
        elif entry == "baseline":
            found = [EDGEFLOWNET_BASELINE]
        else:
            found = [select(entry)]
        codes.extend(code for code in found if code not in codes)
    return codes


@dataclass(frozen=True)
class EvalReport:
    """Rows of one ``efnas eval`` invocation and the checkpoint they came from."""

    run_dir: Path
    checkpoint: str
    epoch: int
    global_step: int
    bn_recal_batches: int
    val_samples_used: int
    rows: List[Dict[str, Any]]

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready document (what ``--json`` prints)."""
        return {"run_dir": str(self.run_dir), "checkpoint": self.checkpoint, "epoch": self.epoch,
                "global_step": self.global_step, "bn_recal_batches": self.bn_recal_batches,
                "val_samples_used": self.val_samples_used, "subnets": self.rows}


def logged_epe(state: Mapping[str, Any], epoch: int) -> Dict[str, float]:
    """{arch name: EPE} the trainer logged for its pool at ``epoch`` (empty if that epoch was not evaluated).

    Empty as well for a checkpoint saved inside an epoch (a stop request): its
    weights moved on after the logged evaluation.
    """
    if state.get("next_batch_index", 0):
        return {}
    row = next((r for r in state.get("history", []) if r.get("epoch") == epoch), {})
    return {key[len("epe_"):]: value for key, value in row.items()
            if key.startswith("epe_") and isinstance(value, (int, float))}


def run_pool(run_dir: Path, which: str = "best") -> Tuple[ArchCode, ...]:
    """The evaluation pool a run recorded (its size from the checkpoint's plan)."""
    state = checkpoint.read_state(checkpoint_dir(run_dir, which))
    pool_size = run_dir_format.recorded_pool_size(state.get("plan"), checkpoint_dir(run_dir, which))
    return load_pool(Path(run_dir) / pool_file_name(pool_size))[1]


def evaluate_run(run_dir: Path, selection: Sequence[str], which: str = "best",
                 cost: Optional[Callable[[ArchCode], Mapping[str, Any]]] = None,
                 log: Callable[[str], None] = lambda line: None,
                 data_overrides: Optional[Mapping[str, Any]] = None) -> EvalReport:
    """Evaluate the selected subnets at checkpoint ``which`` of ``run_dir`` (see ``CheckpointEvaluator``)."""
    run_dir = Path(run_dir)
    checkpoint_dir(run_dir, which)  # a run without that checkpoint is refused before anything else is read
    codes = resolve_selection(selection, lambda: run_pool(run_dir, which), lambda entry: select_code(run_dir, entry))
    costs = {code: dict(cost(code)) for code in codes} if cost is not None else {}
    with CheckpointEvaluator(run_dir, which, log, data_overrides) as evaluator:
        logged = logged_epe(evaluator.state, evaluator.epoch)
        rows = []
        for code in codes:
            row = evaluator.evaluate(code).to_dict()
            row["logged_epe"] = logged.get(arch_name(code))
            row.update(costs.get(code, {}))
            rows.append(row)
        return EvalReport(run_dir, which, evaluator.epoch, evaluator.global_step, evaluator.plan.recal_batches,
                          evaluator.plan.val_samples_used, rows)


def format_report(report: EvalReport) -> str:
    """Human table: one row per subnet."""
    lines = [f"run {report.run_dir}  checkpoint supernet_{report.checkpoint}.ckpt (epoch {report.epoch}, "
             f"global_step {report.global_step})  bn_recal_batches={report.bn_recal_batches}  "
             f"val_samples={report.val_samples_used}"]
    has_cost = any("params" in row for row in report.rows)
    header = f"{'subnet':<11} {'arch code':<18} {'EPE':>8} {'>1px':>7} {'>3px':>7} {'>5px':>7} {'logged EPE':>10}"
    if has_cost:
        header += f" {'params':>11} {'GMACs':>8}"
    lines.append(header)
    for row in report.rows:
        logged = "-" if row["logged_epe"] is None else f"{row['logged_epe']:.4f}"
        line = (f"{row['name']:<11} {','.join(map(str, row['arch_code'])):<18} {row['epe']:>8.4f} "
                f"{100 * row['outlier_1px']:>6.2f}% {100 * row['outlier_3px']:>6.2f}% {100 * row['outlier_5px']:>6.2f}% "
                f"{logged:>10}")
        if has_cost:
            line += f" {row['params']:>11,} {row['macs'] / 1e9:>8.3f}"
        lines.append(line)
    return "\n".join(lines)
