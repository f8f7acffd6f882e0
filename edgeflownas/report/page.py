"""The report page's sections, assembled from the run's tables and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

from edgeflownas.report import html, tables
from edgeflownas.report.ranking import TauStep
from edgeflownas.report.run_data import RunData
from edgeflownas.report.study import study_section

_RANKING_COLUMNS = [
    ("rank", "rank", None), ("subnet", "subnet", None), ("arch_code", "arch code", None),
    ("epe", "EPE (px)", html.number(4)), ("epe_recent_mean", "EPE mean, last epochs", html.number(4)),
    ("epe_recent_std", "EPE std, last epochs", html.number(4)), ("rank_recent_mean", "mean rank, last epochs",
                                                                 html.number(2)),
]
_COST_COLUMNS = [("params", "params", lambda v: "-" if v is None else f"{int(v):,}"),
                 ("macs", "MACs", lambda v: "-" if v is None else f"{float(v) / 1e9:.3f} G")]
_METRIC_COLUMNS = [
    ("name", "subnet", None), ("arch_code", "arch code", None), ("epe", "EPE (px)", html.number(4)),
    ("epe_native", "EPE at native resolution (px)", lambda v: "n/a" if v is None else f"{float(v):.4f}"),
    ("logged_epe", "EPE logged in history", html.number(4)), ("outlier_1px", "> 1 px", html.percent()),
    ("outlier_3px", "> 3 px", html.percent()), ("outlier_5px", "> 5 px", html.percent()),
    ("pixels", "pixels", lambda v: f"{int(v):,}"),
]


def _ranking(run: RunData, ranking: List[Dict], has_cost: bool) -> str:
    if not ranking:
        return html.note("No epoch has a pool evaluation yet.")
    columns = _RANKING_COLUMNS + (_COST_COLUMNS if has_cost else [])
    window = ranking[0]["recent_epochs"]
    return (html.note(f"Pool ranked by EPE at epoch {ranking[0]['epoch']} (the last evaluated epoch of "
                      f"eval_epe_history.csv); 'last epochs' = the last {window} evaluated epochs. "
                      "The highlighted row is the EdgeFlowNet baseline if it is in the pool.")
            + html.table(ranking, columns, text_columns=("subnet", "arch_code"), highlight=lambda r: r["baseline"]))


def _stability(figures: Dict[str, Path], taus: Sequence[TauStep]) -> str:
    summary = tables.tau_summary(taus)
    if summary["mean"] is None:
        text = "Kendall τ needs at least two evaluated epochs."
    else:
        text = (f"Kendall τ-b between the EPE rankings of consecutive evaluated epochs, last {summary['pairs']} "
                f"pairs: mean {summary['mean']:.3f}, minimum {summary['min']:.3f} (1 = identical order, "
                "0 = unrelated). A supernet whose ranking still reshuffles is not ready to rank subnets.")
    rows = html.table(tables.tau_table(taus), [("epochs", "epochs", None), ("kendall_tau", "Kendall τ", html.number(3))])
    return html.note(text) + html.image(figures["ranking"], "pool ranking stability") + rows


def _flow(figures: Dict[str, Path], flow) -> str:
    rows = [dict(m.to_dict(), arch_code=",".join(map(str, m.arch_code)), logged_epe=flow.logged.get(m.name))
            for m in flow.metrics]
    text = (f"Checkpoint supernet_{flow.checkpoint}.ckpt (after epoch {flow.epoch}); BN statistics recalibrated per "
            "subnet on the trainer's fixed training batches; metrics over the trainer's validation batches. "
            f"EPE (px): at the training resolution{_resolution(flow.training_resolution)}, the selection metric, "
            "like the outlier rates (share of pixels whose end-point error exceeds 1, 3, 5 px). "
            f"{_native_text(flow.native)}")
    return (html.note(text) + html.table(rows, _METRIC_COLUMNS, text_columns=("name", "arch_code"))
            + html.image(figures["flow"], "flow samples") + html.image(figures["wheel"], "flow colour wheel"))


def _resolution(size) -> str:
    return f" ({size} px)" if size else ""


def _native_text(native) -> str:
    if not native:
        return ""
    if native.get("available"):
        return f"{native['label']}."
    return f"EPE at native resolution not available: {native.get('reason')}."


_FRONT_COLUMNS = [("rank", "rank", None), ("name", "subnet", None), ("arch_code", "arch code", None),
                  ("epe", "EPE (px)", html.number(4)), ("macs", "MACs", lambda v: f"{float(v) / 1e9:.3f} G"),
                  ("params", "params", lambda v: f"{int(v):,}")]


def _search(figures: Dict[str, Path], search_dir: Path, doc: Dict) -> str:
    from edgeflownas.nas.front import ranked_front

    by_name = {e["name"]: e for e in ranked_front(doc)}
    rows = [dict(by_name[name], rank=rank, arch_code=",".join(map(str, by_name[name]["arch_code"])))
            for rank, name in enumerate(doc["ranked"], start=1)]
    settings = doc["strategy"]
    objective = "latency" if doc.get("objective") == "latency" else "MACs"
    text = (f"{search_dir}: {settings['strategy']} search, {doc['scored']} candidates scored of {doc['feasible']} "
            f"feasible ({', '.join(doc['constraints']) or 'no constraint'}), checkpoint supernet_{doc['checkpoint']} "
            f"(epoch {doc['epoch']}). The table is the EPE-vs-{objective} Pareto front ordered by EPE "
            "(efnas retrain --arch rank:N); EPE on all of the run's validation batches.")
    columns = list(_FRONT_COLUMNS)
    if "latency" in doc:
        latency = doc["latency"]
        text += (f" Latency: predicted by {latency['table']} ({latency['precision']}, {latency['threads']} "
                 f"thread(s), {latency['runtime']} on {latency['device']}; stated error "
                 f"{latency['stated_error_pct']} %; Kendall tau between MACs and measured latency over the "
                 f"table's probe subnets {latency.get('tau_macs_latency', float('nan')):.2f}).")
        columns.append(("latency_ms", "latency (ms)", html.number(3)))
    return (html.note(text) + html.image(figures[f"search:{search_dir.name}"], "search front")
            + html.table(rows, columns, text_columns=("name", "arch_code")))


def _cost(figures: Dict[str, Path], view) -> str:
    text = (f"Validation EPE against MACs per image pair, every EPE of one checkpoint ({view.checkpoint}) with the "
            f"run's scoring (its BN-recalibration and validation batches), the figure efnas eval and search give. "
            f"{view.pool_label[0].upper()}{view.pool_label[1:]}: the EPE logged at that epoch. ")
    text += (f"Star: {view.baseline_label}. " if view.baseline is not None else
             "The EdgeFlowNet baseline is not shown: it is not in the pool, and neither flow pictures nor a search "
             "evaluated it. ")
    if view.fronts:
        text += "Squares: the Pareto front of each search of these weights (pool and baseline included). "
    if view.left_out:
        text += (f"Not shown (they scored other weights; see their own sections): {', '.join(view.left_out)}.")
    return html.note(text) + html.image(figures["cost"], "EPE vs MACs")


def render(run: RunData, ranking: List[Dict], taus: Sequence[TauStep], figures: Dict[str, Path],
           flow: Optional[object], has_cost: bool, searches: Sequence = (), studies: Sequence = (),
           cost_view: Optional[object] = None) -> str:
    """The complete HTML document."""
    sections = [
        ("summary", "Run", html.fields(tables.run_summary(run))),
        ("epe", "Pool EPE per subnet", html.note(
            f"Per-subnet validation EPE after each evaluated epoch; black: {run.mean_column}, grey band "
            f"between dotted lines: ± {run.std_column}. The y-axis fits the subnets (the zero-flow EPE is named "
            "in the title when it lies above them).") + html.image(figures["epe"], "EPE per subnet")),
        ("training", "Training curves", html.note(
            "Points: epoch averages over all optimizer steps (not last-step values); thin line: the running "
            "average of the epoch so far at each step log line (train.log, every train.log_every_steps); "
            "grad norms on a log scale when they span more than 10x; lr at the end of the epoch (no panel when it "
            "is constant).")
            + html.image(figures["training"], "training curves")),
        ("fairness", "Fairness", html.note(tables.fairness_line(run)) if "fairness" not in figures
         else html.image(figures["fairness"], "fairness counts")),
        ("early-stop", "Early stopping", html.image(figures["early_stop"], "early stopping")
            + html.fields(tables.early_stop_rows(run))),
        ("ranking", "Final pool ranking", _ranking(run, ranking, has_cost)),
        *([("cost", "EPE vs MACs", _cost(figures, cost_view))] if cost_view is not None else []),
        ("stability", "Ranking stability", _stability(figures, taus)),
    ]
    if flow is not None:
        sections.append(("flow", "Flow pictures", _flow(figures, flow)))
    for search_dir, doc in searches:
        sections.append((f"search-{search_dir.name}", f"Search front ({search_dir.name})",
                         _search(figures, search_dir, doc)))
    for study_dir, doc in studies:
        sections.append((f"study-{study_dir.name}", f"Ranking study ({study_dir.name})",
                         study_section(doc, figures[f"study:{study_dir.name}"])))
    title = f"efnas run report: {run.manifest.get('experiment', run.run_dir.name)}"
    return html.page(title, sections)
