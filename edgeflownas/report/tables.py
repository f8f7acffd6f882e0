"""The report's tables as plain rows (lists of dicts), computed from a ``RunData``.

Numbers are copied from the artifacts, never recomputed differently: the
ranking uses the per-subnet EPE cells of the last evaluated epoch of
``eval_epe_history.csv``; the early-stop state is the ``state.json`` of
``supernet_last.ckpt``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, ArchCode, format_code
from edgeflownas.report.ranking import TauStep, ranks
from edgeflownas.report.run_data import RunData

CostFn = Callable[[ArchCode], Mapping[str, float]]


def run_summary(run: RunData) -> List[Dict[str, Any]]:
    """(field, value) rows describing the run: identity, data, progress, best result."""
    manifest, state = run.manifest, run.last_state
    samples = manifest.get("samples", {})
    evaluated = run.evaluated()
    last = evaluated[-1] if evaluated else None
    rows = [
        ("experiment", manifest.get("experiment")),
        ("run directory", str(run.run_dir)),
        ("seed", manifest.get("seed")),
        ("config_hash", manifest.get("config_hash")),
        ("git_commit", manifest.get("git_commit")),
        ("input_shape", manifest.get("input_shape")),
        ("data source", manifest.get("data", {}).get("source")),
        ("train_samples / val_samples", f"{samples.get('train_samples')} / {samples.get('val_samples')}"),
        ("evaluation", manifest.get("eval")),
        ("epochs done / global step", f"{state.get('epoch')} / {state.get('global_step')}"),
        (f"best {run.mean_column}", _best_text(state)),
        (f"last {run.mean_column}", f"{last[run.mean_column]:.4f} (epoch {last['epoch']})" if last else "not evaluated"),
        ("fairness_gap", run.fairness.get("fairness_gap")),
    ]
    return [{"field": field, "value": value} for field, value in rows]


def fairness_line(run: RunData) -> Optional[str]:
    """One sentence when every option of every block was trained equally often (the bars would all be equal),
    else None (the counts differ: the report draws them)."""
    counts = {int(c) for block in run.fairness.get("option_counts", {}).values() for c in block}
    if len(counts) != 1:
        return None
    return (f"Every option of every block was trained {counts.pop():,} times in "
            f"{run.fairness.get('complete_cycles'):,} fairness cycles: fairness_gap "
            f"{run.fairness.get('fairness_gap')}, strict fairness held.")


def _best_text(state: Mapping[str, Any]) -> str:
    if state.get("best_metric") is None:
        return "none yet"
    return f"{float(state['best_metric']):.4f} (epoch {state.get('best_epoch')}, saved as supernet_best.ckpt)"


def ranking_table(run: RunData, cost: Optional[CostFn] = None, window: int = 5) -> List[Dict[str, Any]]:
    """The pool ranked by EPE at the last evaluated epoch, with the mean/std over the last ``window`` epochs and cost."""
    evaluated = run.evaluated()
    if not evaluated:
        return []
    final = evaluated[-1]
    recent = evaluated[-window:]
    epe = [final[c] for c in run.epe_columns]
    order = ranks(epe)
    rows = []
    for index, (code, name, column) in enumerate(zip(run.pool, run.pool_names, run.epe_columns)):
        recent_values = np.array([row[column] for row in recent], float)
        recent_ranks = [ranks([row[c] for c in run.epe_columns])[index] for row in recent]
        row: Dict[str, Any] = {
            "rank": order[index], "subnet": name, "arch_code": format_code(code),
            "epoch": final["epoch"], "epe": final[column],
            "epe_recent_mean": float(recent_values.mean()), "epe_recent_std": float(recent_values.std()),
            "rank_recent_mean": float(np.mean(recent_ranks)), "recent_epochs": len(recent),
            "baseline": tuple(code) == EDGEFLOWNET_BASELINE,
        }
        if cost is not None:
            row.update({key: value for key, value in cost(code).items()})
        rows.append(row)
    return sorted(rows, key=lambda r: r["rank"])


def tau_table(taus: Sequence[TauStep]) -> List[Dict[str, Any]]:
    """One row per consecutive pair of evaluated epochs."""
    return [{"epochs": f"{t.epoch_from} → {t.epoch_to}", "epoch_from": t.epoch_from, "epoch_to": t.epoch_to,
             "kendall_tau": t.tau} for t in taus]


def tau_summary(taus: Sequence[TauStep]) -> Dict[str, Optional[float]]:
    """Mean and minimum tau over the given steps (None without any step or only undefined taus)."""
    values = [t.tau for t in taus if np.isfinite(t.tau)]
    if not values:
        return {"mean": None, "min": None, "pairs": len(taus)}
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "pairs": len(taus)}


def early_stop_rows(run: RunData) -> List[Dict[str, Any]]:
    """The early-stop settings (manifest) and counters (last checkpoint state) as rows."""
    config, state = run.early_stop_config(), run.last_state.get("early_stop", {})
    best = state.get("best")
    threshold = None if best is None else float(best) - float(config.get("min_delta", 0.0))
    rows = [
        ("patience", config.get("patience")),
        ("min_delta", config.get("min_delta")),
        ("min_epochs_before_early_stop", config.get("min_epochs_before_early_stop")),
        ("best (early-stop counter)", _fixed(best)),
        ("best_epoch", state.get("best_epoch")),
        ("next epoch must be below", _fixed(threshold)),
        ("bad_epochs", f"{state.get('bad_epochs')} / {config.get('patience')}"),
        ("stopped_epoch", state.get("stopped_epoch") if state.get("stopped_epoch") is not None else "not stopped"),
    ]
    return [{"field": field, "value": value} for field, value in rows]


def _fixed(value: Optional[float]) -> Optional[str]:
    return None if value is None else f"{float(value):.6f}"
