"""``efnas eval`` as a library: which subnets, evaluated at which checkpoint, as rows and a table.

A selection is a list of entries; each entry is ``pool`` (the run's
evaluation pool), ``baseline`` (EdgeFlowNet, ``0,0,0,0,2,1,2,2,2``) or an arch
code in any form ``parse_arch_code`` accepts.  Several entries are separated
by ``;`` (or given as repeated options); compact names may also be separated
by commas (``a000021222,a012001210``).  Duplicates are evaluated once.

Each row has the EPE at the training resolution (the selection metric, what
``--sort epe`` orders by) and, unless switched off, ``epe_native``: the EPE at
the data's native resolution (prediction upsampled, ground truth read at full
resolution; ``train/native_epe.py``), the number papers report; where the data
cannot give it (shards packed at the training size) it is empty and the report
says why.

The rows come in the order asked for (``SORT_KEYS``; ``efnas eval`` sorts by EPE, ``pool``
keeps the order of the selection), and can be written as CSV or JSON, the
format read from the file's suffix.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from edgeflownas.atomic_io import write_csv_atomic, write_json_atomic
from edgeflownas.errors import ArchCodeError, ConfigError
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, NAME_PREFIX, ArchCode, arch_name, parse_arch_code
from edgeflownas.progress import Progress
from edgeflownas.train.trained_run import TrainedRun

KEYWORDS = ("pool", "baseline")
# Row orders of the table and the written file; 'pool' is the order of the selection (the pool's own for 'pool').
SORT_KEYS = ("epe", "macs", "params", "pool")
# The formats --out writes, read from the suffix.
EVAL_RESULTS = (".csv", ".json")
# Columns of the CSV, in this order; any other row key follows them.
CSV_COLUMNS = ("name", "arch_code", "epe", "epe_native", "native_resolution", "outlier_1px", "outlier_3px", "outlier_5px", "pixels", "logged_epe",
               "params", "macs", "latency_ms")


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

    ``select`` reads every other entry (``parse_arch_code``; with a run, ``TrainedRun.select`` also takes
    ``best`` / ``rank:N`` of its search front and refuses codes the run does not hold).
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
    sorted_by: str = "pool"
    # 'HxW' of the rows' ``epe`` and what their ``epe_native`` is (``CheckpointEvaluator.native_status``).
    training_resolution: Optional[str] = None
    native_epe: Optional[Mapping[str, Any]] = None
    kind: str = "supernet"  # or "fixed_arch": a retrain, scored with its own BN statistics

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready document (what ``--json`` prints and ``--out x.json`` writes)."""
        doc = {"run_dir": str(self.run_dir), "checkpoint": self.checkpoint, "epoch": self.epoch,
               "global_step": self.global_step, "bn_recal_batches": self.bn_recal_batches,
               "val_samples_used": self.val_samples_used, "sorted_by": self.sorted_by, "kind": self.kind}
        if self.training_resolution is not None:
            doc["epe"] = f"EPE at the training resolution ({self.training_resolution} px), the selection metric"
        if self.native_epe is not None:
            doc["epe_native"] = dict(self.native_epe)
        return dict(doc, subnets=self.rows)

    def native_note(self) -> Optional[str]:
        """What the rows' ``epe_native`` is, or why it is empty (None when the report does not say)."""
        if self.native_epe is None:
            return None
        if self.native_epe.get("available"):
            return str(self.native_epe["label"])
        return f"EPE at native resolution not available: {self.native_epe.get('reason')}"

    def sorted(self, key: str) -> "EvalReport":
        """The same report with its rows in ``key`` order (``SORT_KEYS``; ties by EPE, then selection order)."""
        check_sort_key(key)
        if key == "pool":
            return dataclasses.replace(self, sorted_by=key)
        missing = [row["name"] for row in self.rows if row.get(key) is None]
        if missing:
            raise ConfigError(f"--sort {key}: no {key} for {', '.join(missing)} (evaluated without cost): "
                              "sort by epe or pool")
        rows = sorted(self.rows, key=lambda row: (row[key], row["epe"]))
        return dataclasses.replace(self, rows=rows, sorted_by=key)


def check_sort_key(key: str) -> None:
    """ConfigError unless ``key`` is one of ``SORT_KEYS``."""
    if key not in SORT_KEYS:
        raise ConfigError(f"--sort {key}: expected one of {', '.join(SORT_KEYS)}")


def check_out_path(path: Path) -> None:
    """ConfigError unless ``path`` ends in .csv or .json (the format is read from the suffix)."""
    if Path(path).suffix.lower() not in EVAL_RESULTS:
        raise ConfigError(f"--out {path}: the format is read from the suffix, expected .csv or .json "
                          f"(e.g. --out results.csv)")


def write_report(report: EvalReport, path: Path) -> Path:
    """Write ``report`` atomically to ``path``: JSON (``to_dict``) or CSV (one row per subnet, run columns last)."""
    path = Path(path)
    check_out_path(path)
    if path.suffix.lower() == ".json":
        write_json_atomic(path, report.to_dict())
        return path
    extra = [key for row in report.rows for key in row if key not in CSV_COLUMNS]
    header = list(CSV_COLUMNS) + list(dict.fromkeys(extra)) + ["checkpoint", "epoch", "global_step", "run_dir",
                                                               "epe_native_note"]
    run = {"checkpoint": report.checkpoint, "epoch": report.epoch, "global_step": report.global_step,
           "run_dir": str(report.run_dir), "epe_native_note": report.native_note()}
    rows = [dict(row, arch_code=",".join(map(str, row["arch_code"])), **run) for row in report.rows]
    write_csv_atomic(path, header, rows)
    return path


class SubnetProgress:
    """A log that appends ``[k/n subnets, elapsed, ETA]`` to the line each subnet's evaluation writes."""

    def __init__(self, total: int, log: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.log, self.clock = total, log, clock
        self.progress: Optional[Progress] = None  # timed from the first subnet's start, not the checkpoint's load

    def next(self) -> None:
        """The next subnet's evaluation begins."""
        if self.progress is None:
            self.progress = Progress(self.total, what="subnets", clock=self.clock)
        self.progress.advance()

    def __call__(self, line: str) -> None:
        self.log(line if self.progress is None else f"{line} [{self.progress.line()}]")


def evaluate_run(run_dir: Path, selection: Sequence[str], which: str = "best",
                 log: Callable[[str], None] = lambda line: None,
                 data_overrides: Optional[Mapping[str, Any]] = None, sort: str = "pool",
                 debug_trace: bool = False, native_epe: bool = True, with_cost: bool = True,
                 latency: Optional[Mapping[str, Any]] = None) -> EvalReport:
    """Evaluate the selected subnets at checkpoint ``which`` of ``run_dir`` (``TrainedRun.evaluator``).

    Each subnet's log line carries ``[k/n, elapsed, ETA]``; the rows come in ``sort`` order (``SORT_KEYS``).
    ``native_epe`` adds each subnet's EPE at the data's native resolution (``epe_native``); ``with_cost`` its
    params and MACs from the run's cost table; ``latency`` ({"table", "precision", "threads"}: an efnas latency
    table) its predicted ``latency_ms`` beside them.
    """
    check_sort_key(sort)
    run = TrainedRun.open(Path(run_dir), which, data_overrides)
    codes = resolve_selection(selection, run.pool, run.select)
    for code in codes:
        run.check_code(code)  # 'baseline' too: a fixed-arch run holds one subnet
    costs = {}
    if with_cost:
        from edgeflownas.latency.table import latency_costs

        height, width = run.input_hw
        latency = latency or {}
        table = latency_costs(run.cost_table(), latency.get("table"), latency.get("precision", "float"),
                              latency.get("threads"), height, width, run.config.model, f"run {run_dir}")
        costs = {code: table.cost(code) for code in codes}
    progress = SubnetProgress(len(codes), log)
    with run.evaluator(progress, debug_trace, native_epe) as evaluator:
        logged = run.logged_epe()
        rows = []
        for code in codes:
            progress.next()
            row = evaluator.evaluate(code).to_dict()
            row["logged_epe"] = logged.get(arch_name(code))
            row.update(costs.get(code, {}))
            rows.append(row)
        report = EvalReport(run.run_dir, which, run.epoch, run.global_step, run.plan.recal_batches,
                            run.plan.val_samples_used, rows, training_resolution=evaluator.training_resolution,
                            native_epe=evaluator.native_status if native_epe else None, kind=run.kind)
    return report.sorted(sort)


def format_report(report: EvalReport) -> str:
    """Human table: one row per subnet."""
    lines = [f"run {report.run_dir}  checkpoint supernet_{report.checkpoint}.ckpt (epoch {report.epoch}, "
             f"global_step {report.global_step})  bn_recal_batches={report.bn_recal_batches}  "
             f"val_samples={report.val_samples_used}  sorted by {report.sorted_by}"]
    has_cost = any("params" in row for row in report.rows)
    has_latency = any("latency_ms" in row for row in report.rows)
    has_native = report.native_epe is not None
    header = f"{'subnet':<11} {'arch code':<18} {'EPE':>8}"
    if has_native:
        header += f" {'EPE native':>10}"
    header += f" {'>1px':>7} {'>3px':>7} {'>5px':>7} {'logged EPE':>10}"
    if has_cost:
        header += f" {'params':>11} {'GMACs':>8}"
    if has_latency:
        header += f" {'ms (table)':>10}"
    lines.append(header)
    for row in report.rows:
        logged = "-" if row["logged_epe"] is None else f"{row['logged_epe']:.4f}"
        line = f"{row['name']:<11} {','.join(map(str, row['arch_code'])):<18} {row['epe']:>8.4f} "
        if has_native:
            native = "n/a" if row.get("epe_native") is None else f"{row['epe_native']:.4f}"
            line += f"{native:>10} "
        line += (f"{100 * row['outlier_1px']:>6.2f}% {100 * row['outlier_3px']:>6.2f}% "
                 f"{100 * row['outlier_5px']:>6.2f}% {logged:>10}")
        if has_cost:
            line += f" {row['params']:>11,} {row['macs'] / 1e9:>8.3f}"
        if has_latency:
            line += f" {row['latency_ms']:>10.3f}"
        lines.append(line)
    if report.training_resolution is not None:
        lines.append(f"EPE: at the training resolution ({report.training_resolution} px), the selection metric; "
                     "outliers and logged EPE in the same pixels")
    if has_native:
        lines.append(f"EPE native: {report.native_note()}")
    return "\n".join(lines)
