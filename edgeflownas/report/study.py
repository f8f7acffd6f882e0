"""The numbers and the figure of a ranking study (``efnas study``): does the supernet rank subnets right?

Input: one record per subnet - its code, MACs, params, the supernet's EPE of
it (BN recalibrated, and with the training BN statistics) and its stand-alone
EPE from each seed's retrain.  Output: ``study.json``'s document and
``study.png``.  Pure Python apart from the figure (matplotlib, imported there).

Definitions (all over the K subnets, lower EPE = better):

- ``tau`` / ``spearman``: Kendall tau-b / Spearman rho between the supernet EPE
  and the stand-alone EPE (mean over the seeds);
- ``noise_ceiling_tau``: tau between the stand-alone EPEs of the first two seeds,
  i.e. how well one stand-alone training ranks the next - no proxy can be
  expected to agree with stand-alone training better than that;
- ``tau_macs_only`` / ``tau_params_only``: tau of the trivial predictors "more
  MACs (params) = lower EPE", i.e. between -MACs and the stand-alone EPE;
- ``tau_no_recal``: tau with the supernet EPE measured on the training BN
  statistics (0 recalibration batches) instead of recalibrated ones.

Every tau and rho has a percentile bootstrap interval over resampled subnets.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from edgeflownas.report.ranking import bootstrap_ci, kendall_tau, spearman_rho

# The study's targets: tau >= 0.6, >= 0.1 above the MACs-only tau, >= 0.7 of the noise ceiling.
TARGET_TAU = 0.6
TARGET_ABOVE_MACS = 0.1
TARGET_OF_CEILING = 0.7


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _finite(value: float) -> Optional[float]:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def _with_ci(name: str, x: Sequence[float], y: Sequence[float], statistic: Callable, resamples: int, level: float,
             seed: int) -> Dict[str, Any]:
    low, high = bootstrap_ci(x, y, statistic, resamples, level, seed)
    return {name: _finite(statistic(x, y)), f"{name}_ci{round(level * 100)}": [_finite(low), _finite(high)]}


def analyze(subnets: Sequence[Mapping[str, Any]], resamples: int = 2000, level: float = 0.95,
            seed: int = 0) -> Dict[str, Any]:
    """The statistics of study.json from per-subnet records (keys: code, name, macs, params, supernet_epe,
    supernet_epe_no_recal, standalone_epe: [one per seed])."""
    if len(subnets) < 3:
        raise ValueError(f"a ranking study needs at least 3 subnets, got {len(subnets)}")
    supernet = [float(s["supernet_epe"]) for s in subnets]
    no_recal = [float(s["supernet_epe_no_recal"]) for s in subnets]
    standalone = [_mean([float(v) for v in s["standalone_epe"]]) for s in subnets]
    seed_a = [float(s["standalone_epe"][0]) for s in subnets]
    seed_b = [float(s["standalone_epe"][1]) for s in subnets]
    minus_macs = [-float(s["macs"]) for s in subnets]
    minus_params = [-float(s["params"]) for s in subnets]
    args = (resamples, level, seed)
    doc: Dict[str, Any] = {"k": len(subnets)}
    doc.update(_with_ci("tau", supernet, standalone, kendall_tau, *args))
    doc.update(_with_ci("spearman", supernet, standalone, spearman_rho, *args))
    doc.update(_with_ci("noise_ceiling_tau", seed_a, seed_b, kendall_tau, *args))
    doc.update(_with_ci("tau_macs_only", minus_macs, standalone, kendall_tau, *args))
    doc.update(_with_ci("tau_params_only", minus_params, standalone, kendall_tau, *args))
    doc.update(_with_ci("tau_no_recal", no_recal, standalone, kendall_tau, *args))
    doc["targets"] = targets(doc)
    return doc


def targets(doc: Mapping[str, Any]) -> Dict[str, Any]:
    """Each target of the study with its measured value and whether it is met (None if undefined)."""
    tau, macs, ceiling = doc.get("tau"), doc.get("tau_macs_only"), doc.get("noise_ceiling_tau")

    def met(value: Optional[float], bound: float) -> Optional[bool]:
        return None if value is None else value >= bound

    above = None if tau is None or macs is None else round(tau - macs, 6)
    share = None if tau is None or not ceiling else round(tau / ceiling, 6)
    return {
        "tau_at_least": {"target": TARGET_TAU, "measured": tau, "met": met(tau, TARGET_TAU)},
        "tau_above_macs_only": {"target": TARGET_ABOVE_MACS, "measured": above, "met": met(above, TARGET_ABOVE_MACS)},
        "tau_of_noise_ceiling": {"target": TARGET_OF_CEILING, "measured": share,
                                 "met": None if ceiling is None or ceiling <= 0 else met(share, TARGET_OF_CEILING)},
    }


def summary_lines(doc: Mapping[str, Any]) -> List[str]:
    """What ``efnas study`` prints at the end and ``efnas report`` shows: the figures and the targets."""
    level = next((key.rsplit("_ci", 1)[1] for key in doc if key.startswith("tau_ci")), "95")

    def show(name: str) -> str:
        value, ci = doc.get(name), doc.get(f"{name}_ci{level}") or [None, None]
        shown = "n/a" if value is None else f"{value:+.3f}"
        if None not in ci:
            shown += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
        return shown

    lines = [f"K={doc['k']} subnets, {doc.get('seeds', 2)} stand-alone seeds each ({level}% bootstrap intervals)",
             f"  tau(supernet, stand-alone)   {show('tau')}",
             f"  spearman                     {show('spearman')}",
             f"  noise ceiling (seed vs seed) {show('noise_ceiling_tau')}",
             f"  MACs only                    {show('tau_macs_only')}",
             f"  params only                  {show('tau_params_only')}",
             f"  no BN recalibration          {show('tau_no_recal')}"]
    for name, target in doc.get("targets", {}).items():
        state = {True: "met", False: "MISSED", None: "undefined"}[target["met"]]
        measured = "n/a" if target["measured"] is None else f"{target['measured']:.3f}"
        lines.append(f"  target {name} >= {target['target']}: {measured} ({state})")
    zero = doc.get("zero_flow_epe")
    if zero:
        lines.append(f"  val zero-flow EPE {zero:.4f}: supernet mean {doc.get('supernet_epe_mean', 0):.4f} "
                     f"({doc.get('supernet_epe_mean', 0) / zero:.2f}x), stand-alone mean "
                     f"{doc.get('standalone_epe_mean', 0):.4f} ({doc.get('standalone_epe_mean', 0) / zero:.2f}x)")
    return lines


def _shown(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def study_figure(doc: Mapping[str, Any]):
    """Supernet EPE vs stand-alone EPE (mean of the seeds, bars spanning the seeds), with a least-squares trend
    and tau in the title; a second panel with stand-alone EPE vs MACs."""
    import numpy as np

    from edgeflownas.report.plots import _figure

    subnets = doc["subnets"]
    x = np.array([s["supernet_epe"] for s in subnets], float)
    runs = np.array([s["standalone_epe"] for s in subnets], float)
    y = runs.mean(axis=1)
    low, high = y - runs.min(axis=1), runs.max(axis=1) - y
    macs = np.array([s["macs"] for s in subnets], float) / 1e6
    figure = _figure(10.5, 4.4)
    left, right = figure.subplots(1, 2)
    left.errorbar(x, y, yerr=[low, high], fmt="o", capsize=3, color="tab:blue", label="subnet (bar: seed range)")
    for s, xi, yi in zip(subnets, x, y):
        if s.get("baseline"):
            left.annotate("baseline", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if len(set(x)) > 1:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(x.min(), x.max(), 50)
        left.plot(grid, slope * grid + intercept, "--", color="grey", label="least-squares trend")
    zero = doc.get("zero_flow_epe")
    if zero:
        left.axhline(zero, color="tab:red", lw=0.8, label=f"zero-flow EPE {zero:.3f}")
    level = next((key.rsplit("_ci", 1)[1] for key in doc if key.startswith("tau_ci")), "95")
    ci = doc.get(f"tau_ci{level}") or [None, None]
    ci_text = "" if None in ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    tau = doc.get("tau")
    left.set_title(f"Kendall tau = {_shown(tau)}{ci_text}, K = {doc['k']} "
                   f"(noise ceiling {_shown(doc.get('noise_ceiling_tau'))})", fontsize=9)
    left.set_xlabel("supernet EPE (BN recalibrated) [px]")
    left.set_ylabel("stand-alone EPE, mean of seeds [px]")
    left.legend(fontsize=7)
    right.errorbar(macs, y, yerr=[low, high], fmt="s", capsize=3, color="tab:green")
    right.set_xlabel("MACs per pair [M]")
    right.set_ylabel("stand-alone EPE [px]")
    right.set_title(f"MACs-only tau = {_shown(doc.get('tau_macs_only'))}", fontsize=9)
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
    """Study directories whose study.json studies ``run_dir`` (a study keeps its supernet in <study>/runs/supernet)."""
    run_dir = Path(run_dir).resolve()
    candidate = run_dir.parent.parent
    path = candidate / STUDY_JSON
    if not path.is_file():
        return []
    try:
        doc = load_study_doc(candidate)
    except ValueError:
        return []
    return [candidate] if Path(doc.get("supernet_run", "")).resolve() == run_dir else []



def study_section(doc: Mapping[str, Any], figure: Path) -> str:
    """HTML of one study: what was done, the figures with their intervals, the targets, the per-subnet table."""
    from edgeflownas.report import html

    subnets = doc["subnets"]
    seeds = list(subnets[0]["standalone"]) if subnets else []
    rows = []
    for s in sorted(subnets, key=lambda s: s["supernet_epe"]):
        row = {"name": s["name"] + (" (baseline)" if s.get("baseline") else ""), "macs": s["macs"],
               "params": s["params"], "supernet_epe": s["supernet_epe"], "no_recal": s["supernet_epe_no_recal"]}
        for seed, value in zip(seeds, s["standalone_epe"]):
            row[f"seed_{seed}"] = value
        rows.append(row)
    columns = [("name", "subnet", None), ("macs", "MACs", lambda v: f"{float(v) / 1e6:.1f} M"),
               ("params", "params", lambda v: f"{int(v):,}"),
               ("supernet_epe", "supernet EPE", html.number(4)), ("no_recal", "no recal", html.number(4))]
    columns += [(f"seed_{seed}", f"stand-alone seed {seed}", html.number(4)) for seed in seeds]
    text = (f"Supernet {doc.get('supernet_run')} (checkpoint {doc.get('checkpoint')}, {doc.get('recal_batches')} BN "
            f"recalibration batches) against {doc.get('seeds')} stand-alone retrains from scratch per subnet "
            f"({doc.get('standalone_epe_kind')} val EPE). Subnets: {doc.get('selection')}.")
    summary = "<pre>" + html.escape("\n".join(summary_lines(doc))) + "</pre>"
    return (html.note(text) + summary + html.image(figure, "supernet vs stand-alone EPE")
            + html.table(rows, columns, text_columns=("name",)))


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
