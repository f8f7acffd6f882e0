"""``build_report``: figures + one self-contained HTML page for a run directory.

Sections: run summary; pool EPE per subnet across epochs (mean +- std band);
training curves (epoch-average and step-line loss, grad norm before/after clip, lr
unless constant); fairness counts per block (one line when they are all equal);
early-stopping state; final pool ranking with
cost; ranking stability (Kendall tau between consecutive evaluated epochs);
flow pictures for a few fixed validation samples (img0, img1, ground truth, the
baseline subnet's and the best pool subnet's prediction, their error maps),
computed from a checkpoint with the trainer's BN recalibration, with both
subnets' EPE at the training resolution and at the data's native resolution; EPE vs MACs
(with a cost function; every EPE in it is of the report's checkpoint, with the
run's scoring: the pool as logged at that epoch, the baseline, the front of
every search of those weights); the Pareto front of every ``efnas search`` kept in the run
directory (``search*/``).  Only the flow section needs TensorFlow;
``flow_samples=0`` skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, ArchCode, arch_name
from edgeflownas.report import plots, tables
from edgeflownas.report.page import render
from edgeflownas.report.ranking import TauStep, consecutive_taus
from edgeflownas.report.run_data import RunData, load_run
from edgeflownas.report.study import load_study_doc, studies_of_run, write_figure
from edgeflownas.nas.front import front_figure, load_front, load_scored, searches_of_run
from edgeflownas.train.trained_run import TrainedRun

REPORT_FILE = "report.html"


@dataclass(frozen=True)
class FlowSection:
    """What the flow pictures were computed from."""

    checkpoint: str
    epoch: int
    metrics: List  # SubnetMetrics, baseline first
    logged: Dict[str, Optional[float]]
    samples: List[plots.FlowSample]
    # 'HxW' of the metrics' ``epe`` and what their ``epe_native`` is (``CheckpointEvaluator.native_status``).
    training_resolution: Optional[str] = None
    native: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class ReportResult:
    """Paths written and the numbers shown."""

    html: Path
    figures: Dict[str, Path]
    ranking: List[Dict]
    taus: List[TauStep]
    flow: Optional[FlowSection] = None


def best_pool_subnet(run: RunData, epoch: int) -> tuple:
    """(code, logged EPE, epoch used) of the lowest-EPE pool subnet at the last evaluation at or before ``epoch``."""
    rows = [row for row in run.evaluated() if row["epoch"] <= epoch]
    if not rows:
        raise ValueError(f"no pool evaluation at or before epoch {epoch}")
    row = rows[-1]
    values = [row[c] for c in run.epe_columns]
    index = min(range(len(values)), key=lambda i: (values[i], i))
    return run.pool[index], values[index], row["epoch"]


def flow_section(run: RunData, which: str, count: int, log: Callable[[str], None],
                 data_overrides: Optional[Dict[str, Any]] = None) -> FlowSection:
    """Evaluate the baseline and the best pool subnet (a fixed-arch run: its own subnet) at checkpoint ``which``;
    predict ``count`` fixed samples."""
    trained = TrainedRun.open(run.run_dir, which, data_overrides)
    with trained.evaluator(log, native_epe=True) as evaluator:
        best, best_logged, logged_epoch = best_pool_subnet(run, evaluator.epoch)
        if trained.fixed_code is not None:
            subnets: List[ArchCode] = [trained.fixed_code]
            labels = {trained.fixed_code: f"fixed arch {arch_name(trained.fixed_code)}"}
        else:
            subnets = [EDGEFLOWNET_BASELINE] + ([best] if best != EDGEFLOWNET_BASELINE else [])
            labels = {EDGEFLOWNET_BASELINE: f"baseline {arch_name(EDGEFLOWNET_BASELINE)}",
                      best: f"best pool {arch_name(best)}"}
        indices = evaluator.sample_indices(count)
        metrics, predictions, batch = [], {}, None
        for code in subnets:
            metrics.append(evaluator.evaluate(code))
            batch, flow = evaluator.predict(code, indices)
            predictions[labels[code]] = flow
        samples = [plots.FlowSample(batch.ids[i], batch.img0[i], batch.img1[i], batch.flow[i],
                                    {label: flow[i] for label, flow in predictions.items()})
                   for i in range(len(indices))]
        # A checkpoint saved inside an epoch (stop request) has trained past its epoch's logged evaluation.
        comparable = not evaluator.state.get("next_batch_index")
        logged = {arch_name(best): best_logged if comparable and logged_epoch == evaluator.epoch else None}
        baseline_column = f"epe_{arch_name(EDGEFLOWNET_BASELINE)}"
        if comparable and baseline_column in run.columns:
            row = next((r for r in run.history if r["epoch"] == evaluator.epoch), {})
            logged[arch_name(EDGEFLOWNET_BASELINE)] = row.get(baseline_column)
        return FlowSection(which, evaluator.epoch, metrics, logged, samples, evaluator.training_resolution,
                           evaluator.native_status)


@dataclass(frozen=True)
class CostView:
    """What the EPE-vs-MACs figure shows: points (name, epe, macs), all EPEs of one checkpoint, and the searches
    left out because they scored other weights."""

    pool: List[Dict[str, Any]]
    pool_label: str
    baseline: Optional[Dict[str, Any]]
    baseline_label: str
    fronts: Dict[str, List[Dict[str, Any]]]
    checkpoint: str = ""
    left_out: Tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointMark:
    """Which weights the figure's EPEs are of: checkpoint name, its epoch, its weights digest, whether the epoch's
    logged pool evaluation is of these weights (not for a checkpoint saved inside an epoch)."""

    which: str
    epoch: int
    weights_sha256: Optional[str]
    logged_is_current: bool = True

    @classmethod
    def read(cls, run_dir: Path, which: str) -> "CheckpointMark":
        """The mark of ``<run_dir>/supernet_<which>.ckpt`` (reads state.json only)."""
        from edgeflownas.train import checkpoint as ckpt
        from edgeflownas.train.trained_run import checkpoint_dir, recorded_weights_sha256

        state = ckpt.read_state(checkpoint_dir(run_dir, which))
        return cls(which, int(state["epoch"]), recorded_weights_sha256(state), not state.get("next_batch_index"))


def cost_view(run: RunData, cost: tables.CostFn, flow: Optional[FlowSection],
              searches: Sequence[Tuple[Path, Mapping[str, Any]]], mark: CheckpointMark) -> Optional[CostView]:
    """The figure's points, every EPE the one of checkpoint ``mark`` with the run's scoring: the pool as logged at
    that checkpoint's epoch, the baseline (from the pool, the flow section or a search's marks, in that order), and
    the EPE-vs-MACs front of each search of those weights; None without a pool evaluation of them."""
    row = next((r for r in run.evaluated() if r["epoch"] == mark.epoch), None) if mark.logged_is_current else None
    if row is None:
        return None
    where = f"supernet_{mark.which}, epoch {mark.epoch}"
    pool = [{"name": name, "epe": row[column], "macs": cost(code)["macs"]}
            for code, name, column in zip(run.pool, run.pool_names, run.epe_columns)]
    same = [(d, doc) for d, doc in searches if mark.weights_sha256 is not None
            and doc.get("checkpoint_sha256") == mark.weights_sha256]
    left_out = tuple(f"{d.name} (supernet_{doc.get('checkpoint')}, epoch {doc.get('epoch')})"
                     for d, doc in searches if (d, doc) not in same)
    baseline, baseline_label = None, "EdgeFlowNet baseline"
    in_pool = next((p for code, p in zip(run.pool, pool) if tuple(code) == EDGEFLOWNET_BASELINE), None)
    metrics = next((m for m in flow.metrics if tuple(m.arch_code) == EDGEFLOWNET_BASELINE), None) if flow else None
    if in_pool is not None:
        baseline, baseline_label = in_pool, baseline_label + " (in the pool)"
    elif metrics is not None and flow.checkpoint == mark.which:
        baseline = {"name": metrics.name, "epe": metrics.epe, "macs": cost(EDGEFLOWNET_BASELINE)["macs"]}
        baseline_label += " (evaluated for the flow pictures)"
    else:
        for search_dir, doc in same:
            marked = doc.get("marks", {}).get("baseline") or []
            if marked:
                baseline = {key: marked[0][key] for key in ("name", "epe", "macs")}
                baseline_label += f" (scored by {search_dir.name})"
                break
    fronts = {f"search front {d.name}": [{key: e[key] for key in ("name", "epe", "macs")} for e in doc["front_macs"]]
              for d, doc in same}
    return CostView(pool, f"pool ({len(pool)} subnets)", baseline, baseline_label, fronts, where, left_out)


def build_report(run_dir: Path, out_dir: Optional[Path] = None, checkpoint: str = "best", flow_samples: int = 3,
                 tau_epochs: int = 10, cost: Optional[tables.CostFn] = None,
                 log: Callable[[str], None] = lambda line: None,
                 data_overrides: Optional[Dict[str, Any]] = None) -> ReportResult:
    """Write the figures and ``report.html`` for ``run_dir`` into ``out_dir`` (default ``<run_dir>/report``).

    ``data_overrides`` ({"data.val_dir": ...}) locate the run's data if it moved (flow pictures only).
    """
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    taus = consecutive_taus(run.history, run.epe_columns)
    recent_taus = taus[-tau_epochs:]
    ranking = tables.ranking_table(run, cost)
    figures = {
        "epe": plots.save(plots.epe_figure(run), out / "epe_per_subnet.png"),
        "training": plots.save(plots.training_figure(run), out / "training_curves.png"),
        "early_stop": plots.save(plots.early_stop_figure(run), out / "early_stop.png"),
        "ranking": plots.save(plots.ranking_figure(run, recent_taus, last_epochs=tau_epochs + 1),
                              out / "ranking_stability.png"),
    }
    if tables.fairness_line(run) is None:  # counts that differ are worth a figure; equal ones, one line
        figures["fairness"] = plots.save(plots.fairness_figure(run), out / "fairness_counts.png")
    flow = None
    if flow_samples > 0:
        flow = flow_section(run, checkpoint, flow_samples, log, data_overrides)
        figures["flow"] = plots.save(plots.flow_samples_figure(flow.samples), out / "flow_samples.png")
        figures["wheel"] = plots.save(plots.wheel_figure(), out / "flow_wheel.png")
    searches = []
    for search_dir in searches_of_run(run.run_dir):
        doc = load_front(search_dir)
        figure = front_figure(load_scored(search_dir), doc["front_macs"], doc.get("marks", {}), doc.get("front_latency"))
        figures[f"search:{search_dir.name}"] = plots.save(figure, out / f"{search_dir.name}_front.png")
        searches.append((search_dir, doc))
    view = cost_view(run, cost, flow, searches, CheckpointMark.read(run.run_dir, checkpoint)) if cost is not None else None
    if view is not None:
        figures["cost"] = plots.save(plots.epe_macs_figure(view.pool, view.baseline, view.fronts, view.pool_label,
                                                           view.baseline_label), out / "epe_vs_macs.png")
    studies = []
    for study_dir in studies_of_run(run.run_dir):
        doc = load_study_doc(study_dir)
        figures[f"study:{study_dir.name}"] = write_figure(doc, out / f"{study_dir.name}_study.png")
        studies.append((study_dir, doc))
    page_path = out / REPORT_FILE
    page_path.write_text(render(run, ranking, recent_taus, figures, flow, cost is not None, searches, studies,
                                view), encoding="utf-8")
    log(f"report: {len(figures)} figures in {out}")  # the page's path is the command's result (stdout)
    return ReportResult(page_path, figures, ranking, taus, flow)
