"""The figure and the report pages of a ranking study (``efnas study``).

The numbers of study.json are ``edgeflownas.study.analysis``'s; this module draws
them (``study.png``) and renders them for ``efnas report``.  Pure Python apart
from the figure (matplotlib, imported there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from edgeflownas.study.analysis import summary_lines

__all__ = ["summary_lines", "study_figure", "write_figure", "load_study_doc", "studies_of_run", "study_section",
           "build_study_report"]


def _shown(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _supernet_mean(subnet: Mapping[str, Any]) -> float:
    values = list(subnet["supernet_epe"].values())
    return sum(values) / len(values)


def zero_line_fits(low: Any, high: Any, zero: float) -> bool:
    """Whether a zero-flow line at ``zero`` belongs on an axis spanning the values ``low``..``high``: within the
    values' own span above them (a stuck retrain puts it among them)."""
    bottom, top = float(min(low)), float(max(high))
    return zero <= top + max(top - bottom, 1e-3)


def study_figure(doc: Mapping[str, Any]):
    """Supernet EPE (mean over supernet seeds, bars spanning them) vs the reference (bars spanning the retrain
    seeds), with tau, the noise ceiling and the verdict in the title; a second panel with the reference vs total
    depth, the trivial predictor to beat."""
    import numpy as np

    from edgeflownas.report.plots import _figure

    subnets = doc["subnets"]
    reference = doc.get("reference", {})
    x = np.array([_supernet_mean(s) for s in subnets], float)
    supers = [np.array(list(s["supernet_epe"].values()), float) for s in subnets]
    y = np.array([reference[s["name"]] for s in subnets], float)
    runs = [np.array([r["epe"] for r in s["standalone"].values()], float) for s in subnets]
    y_err = [y - np.array([r.min() for r in runs]), np.array([r.max() for r in runs]) - y]
    x_err = [x - np.array([v.min() for v in supers]), np.array([v.max() for v in supers]) - x]
    stuck = np.array([any(r.get("stuck") for r in s["standalone"].values()) for s in subnets])
    depth = np.array([s["depth"] for s in subnets], float)
    figure = _figure(11.0, 4.6)
    left, right = figure.subplots(1, 2)
    left.errorbar(x, y, xerr=x_err, yerr=y_err, fmt="o", capsize=2, color="tab:blue", ms=4,
                  label="subnet (bars: supernet seeds, retrain seeds)")
    if stuck.any():
        left.plot(x[stuck], y[stuck], "x", color="tab:red", ms=9, label="a retrain stuck at the mean flow")
    zero = doc.get("zero_flow_epe")
    zero_text = ""
    if zero and zero_line_fits(y - y_err[0], y + y_err[1], zero):
        left.axhline(zero, color="tab:red", lw=0.8, label=f"zero-flow EPE {zero:.3f}")
    elif zero:  # far above every retrain: a line there would squash the subnets into one row
        zero_text = f", zero-flow EPE {zero:.3f} px (above the axis)"
    ci = doc.get("tau_ci95") or [None, None]
    ci_text = "" if None in ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    left.set_title(f"tau = {_shown(doc.get('tau'))}{ci_text}, K = {doc['k']}, noise ceiling "
                   f"{_shown(doc.get('noise_ceiling_tau'))}, best trivial {_shown(doc.get('best_trivial_tau'))}\n"
                   f"verdict: {doc.get('verdict')}{zero_text}", fontsize=8)
    left.set_xlabel("supernet EPE (BN recalibrated), mean over supernet seeds [px]")
    left.set_ylabel("reference: stand-alone EPE, median of seeds [px]")
    left.legend(fontsize=7)
    right.scatter(depth + np.linspace(-0.15, 0.15, len(depth)), y, c=x, cmap="viridis", s=18)
    right.set_xlabel("total depth (ResBlocks); colour = supernet EPE")
    right.set_ylabel("reference EPE [px]")
    depth_tau = (doc.get("trivial", {}).get("depth") or {}).get("tau")
    right.set_title(f"depth-only tau = {_shown(depth_tau)}, partial tau given depth = "
                    f"{_shown(doc.get('partial_tau_given_depth'))}", fontsize=8)
    return figure


def write_figure(doc: Mapping[str, Any], path: Path) -> Path:
    """``study_figure`` as PNG at ``path``."""
    from edgeflownas.report.plots import save

    return save(study_figure(doc), path)


# ----------------------------------------------------------------------------------------------- report pages
STUDY_JSON = "study.json"
STUDY_FIGURE = "study.png"


def load_study_doc(study_dir: Path) -> Dict[str, Any]:
    """study.json of a study directory; ValueError naming the file if it is missing or unreadable."""
    import json

    path = Path(study_dir) / STUDY_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable study.json ({error})") from None


def studies_of_run(run_dir: Path) -> List[Path]:
    """Study directories whose study.json studies ``run_dir`` (a study keeps its supernets in <study>/runs/supernet_seed<s>)."""
    run_dir = Path(run_dir).resolve()
    candidate = run_dir.parent.parent
    path = candidate / STUDY_JSON
    if not path.is_file():
        return []
    try:
        doc = load_study_doc(candidate)
    except ValueError:
        return []
    runs = [candidate / path for path in doc.get("supernet_runs", {}).values()]
    return [candidate] if any(path.resolve() == run_dir for path in runs) else []



def study_section(doc: Mapping[str, Any], figure: Path) -> str:
    """HTML of one study: what was done, the figures with their intervals, the verdict, the per-subnet table."""
    from edgeflownas.report import html

    subnets = doc["subnets"]
    seeds = list(subnets[0]["standalone"]) if subnets else []
    supers = list(subnets[0]["supernet_epe"]) if subnets else []
    rows = []
    for s in sorted(subnets, key=_supernet_mean):
        row = {"name": s["name"] + (" (baseline)" if s.get("baseline") else ""), "depth": s["depth"],
               "macs": s["macs"], "params": s["params"], "reference": doc.get("reference", {}).get(s["name"])}
        for seed in supers:
            row[f"supernet_{seed}"] = s["supernet_epe"][seed]
        for seed in seeds:
            run = s["standalone"][seed]
            row[f"seed_{seed}"] = f"{run['epe']:.4f}" + (" (stuck)" if run.get("stuck") else "")
        rows.append(row)
    columns = [("name", "subnet", None), ("depth", "depth", None),
               ("macs", "MACs", lambda v: f"{float(v) / 1e6:.1f} M"), ("params", "params", lambda v: f"{int(v):,}"),
               ("reference", "reference EPE", html.number(4))]
    columns += [(f"supernet_{seed}", f"supernet seed {seed}", html.number(4)) for seed in supers]
    columns += [(f"seed_{seed}", f"stand-alone seed {seed}", None) for seed in seeds]
    text = (f"Supernets {', '.join(doc.get('supernet_runs', {}).values())} (checkpoint {doc.get('checkpoint')}, "
            f"{doc.get('recal_batches')} BN recalibration batches) against {doc.get('seeds')} stand-alone retrains "
            f"from scratch per subnet (reference: {doc.get('reference_kind')}). Subnets: {doc.get('selection')}.")
    summary = "<pre>" + html.escape("\n".join(summary_lines(doc))) + "</pre>"
    return (html.note(text) + summary + html.image(figure, "supernet vs stand-alone EPE")
            + html.table(rows, columns, text_columns=("name",) + tuple(f"seed_{seed}" for seed in seeds)))


def build_study_report(study_dir: Path, out_dir: Optional[Path] = None,
                       log: Callable[[str], None] = lambda line: None) -> Path:
    """``<study>/report/report.html``: the study's figure (redrawn from study.json) and tables."""
    from edgeflownas.report import html

    doc = load_study_doc(study_dir)
    out = Path(out_dir) if out_dir is not None else Path(study_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    figure = write_figure(doc, out / STUDY_FIGURE)
    page_path = out / "report.html"
    page_path.write_text(html.page(f"efnas ranking study: {doc.get('study', Path(study_dir).name)}",
                                   [("study", "Ranking study", study_section(doc, figure))]), encoding="utf-8")
    log(f"report: {page_path}")
    return page_path
