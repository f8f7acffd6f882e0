"""``efnas status``: one table of an experiment's trials and their SLURM jobs.

Rows come from the submission log; SLURM state and requeue count from
``sacct -D`` (every requeue leaves a REQUEUED record); epoch reached and best
mean EPE from the run directory's eval_epe_history.csv.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from edgeflownas.errors import ConfigError, SubmitError
from launcher import slurm
from launcher.job import read_result
from launcher.records import latest_by_trial, read_records, record_path

HISTORY = "eval_epe_history.csv"


@dataclass(frozen=True)
class TrialStatus:
    """One row of the status table."""

    trial: str
    job_id: str
    state: str
    requeues: Optional[int]
    epoch: Optional[int]
    best_epe: Optional[float]
    best_column: str
    finished: bool
    run_dir: Path


def check_experiment_name(name: str) -> None:
    """Reject names the config schema would reject (path separators, shell metacharacters)."""
    from edgeflownas.config import load_schema

    pattern = load_schema()["properties"]["experiment"]["properties"]["name"]["pattern"]
    if not re.match(pattern, name):
        raise ConfigError(f"experiment name '{name}' is invalid: letters, digits, '.', '_' and '-' only ({pattern})")


def history_summary(run_dir: Path) -> tuple:
    """(last epoch, best mean EPE, its column name) from eval_epe_history.csv; Nones if absent."""
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return None, None, "mean_epe_12"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None, None, "mean_epe_12"
    column = next((c for c in rows[0] if c.startswith("mean_epe_")), "mean_epe_12")
    values = [float(r[column]) for r in rows if r.get(column) not in (None, "")]
    finite = [v for v in values if math.isfinite(v)]
    return int(rows[-1]["epoch"]), (min(finite) if finite else None), column


def experiment_status(output_root: Path, experiment: str) -> tuple:
    """(rows, note) for an experiment; note explains a missing sacct."""
    check_experiment_name(experiment)
    experiment_dir = Path(output_root) / experiment
    latest = latest_by_trial(read_records(experiment_dir))
    if not latest:
        raise SubmitError(f"no submissions recorded for experiment '{experiment}' ({record_path(experiment_dir)} "
                          "not found): check the name and --output_root")
    note = ""
    if shutil.which("sacct"):
        states = slurm.query_states(r["job_id"] for r in latest.values())
    else:
        states, note = {}, "sacct not found on PATH: SLURM states unknown"
    rows = []
    for trial, record in sorted(latest.items(), key=lambda item: item[0] or ""):
        run_dir = Path(record["run_dir"])
        epoch, best, column = history_summary(run_dir)
        state = states.get(record["job_id"])
        rows.append(TrialStatus(
            trial=trial or experiment, job_id=record["job_id"], state=state.state if state else "UNKNOWN",
            requeues=state.requeues if state else None, epoch=epoch, best_epe=best, best_column=column,
            finished=read_result(run_dir) is not None, run_dir=run_dir))
    return rows, note


def format_status(rows: List[TrialStatus], note: str = "") -> str:
    """Fixed-width table, one line per trial."""
    column = rows[0].best_column if rows else "mean_epe_12"
    header = ["TRIAL", "JOB", "STATE", "REQUEUES", "EPOCH", f"BEST_{column.upper()}", "FINISHED", "RUN_DIR"]
    table = [header] + [[
        r.trial, r.job_id, r.state, "-" if r.requeues is None else str(r.requeues),
        "-" if r.epoch is None else str(r.epoch), "-" if r.best_epe is None else f"{r.best_epe:.4f}",
        "yes" if r.finished else "no", str(r.run_dir)] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in table]
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines)
