"""``efnas status``: one table of the runs of an experiment, submitted to SLURM or trained locally.

A target is a run directory, an experiment directory or an experiment name
under ``--output_root``.  Submitted trials come from the submission log, with
SLURM state and requeue count from ``sacct -D`` (every requeue leaves a
REQUEUED record).  Every run directory adds epoch reached and best mean EPE
(eval_epe_history.csv, best by the run's own early-stop rule), the last checkpoint's global step, whether a process
holds its lock (``.efnas.lock``, probed without taking it) and its log files.
A run whose history cannot be read is one line (the file and the byte or
line) among the others, and the command exits 1 after showing them all; a
single run directory given as the target is that line alone.
File names and the history reader are those of edgeflownas.train.run_dir, the format's owner.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from edgeflownas.errors import CheckpointError, ConfigError, SubmitError
from edgeflownas.train import run_dir as rd
from edgeflownas.train.checkpoint import STATE_FILE
from launcher import slurm
from launcher.job import read_result
from launcher.records import latest_by_trial, read_records, record_path

TRAIN_LOG = "train.log"
RUN_MARKERS = (rd.MANIFEST, rd.HISTORY, rd.LAST, rd.BEST, TRAIN_LOG)


def check_experiment_name(name: str) -> None:
    """Reject names the config schema would reject (path separators, shell metacharacters)."""
    from edgeflownas.config import load_schema

    pattern = load_schema()["properties"]["experiment"]["properties"]["name"]["pattern"]
    if not re.match(pattern, name):
        raise ConfigError(f"experiment name '{name}' is invalid: letters, digits, '.', '_' and '-' only ({pattern})")


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    """A JSON object, or None while it is absent or half-written (status only shows what it can read)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _last_state(run_dir: Path) -> Optional[Dict[str, Any]]:
    return _read_json(Path(run_dir) / rd.LAST / STATE_FILE)


def _recorded_mean_column(run_dir: Path) -> Optional[str]:
    manifest = _read_json(Path(run_dir) / rd.MANIFEST)
    if manifest is None or not isinstance(manifest.get("eval"), dict) or "pool_size" not in manifest["eval"]:
        return None
    return rd.mean_column(rd.recorded_pool_size(manifest["eval"], Path(run_dir) / rd.MANIFEST))


def history_summary(run_dir: Path) -> Tuple[Optional[int], Optional[float], Optional[str]]:
    """(last epoch, best mean EPE, its column) from eval_epe_history.csv; Nones where nothing is recorded yet.

    Best follows the run's own rule: the last epoch the trainer marked ``new_best`` (the early-stop rule, with
    its min_delta), not the column's minimum; a history written before that column was added takes the
    ``best_metric`` of supernet_last's state.
    """
    run_dir = Path(run_dir)
    path = run_dir / rd.HISTORY
    if not path.is_file():
        return None, None, _recorded_mean_column(run_dir)
    columns, rows = rd.read_history(path)
    column = rd.pool_mean_column_in(columns) or _recorded_mean_column(run_dir)
    if not rows:
        return None, None, column
    if rd.NEW_BEST in columns:
        best_row = rd.best_history_row(columns, rows)
        best = best_row.get(column) if best_row is not None and column else None
    else:
        best = (_last_state(run_dir) or {}).get("best_metric")
    return int(rows[-1]["epoch"]), best, column


@dataclass(frozen=True)
class TrialStatus:
    """One row of the status table (job fields are None for a run trained locally)."""

    trial: str
    job_id: Optional[str]
    state: str
    requeues: Optional[int]
    epoch: Optional[int]
    best_epe: Optional[float]
    best_column: Optional[str]
    last_step: Optional[int]
    finished: bool
    run_dir: Path
    lock_holder: Optional[str] = None
    logs: Dict[str, str] = field(default_factory=dict)
    damaged: Optional[str] = None  # why the run's history could not be read (file and byte or line)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready row (``efnas status --json``)."""
        return dict(asdict(self), run_dir=str(self.run_dir))


def last_checkpoint_step(run_dir: Path) -> Optional[int]:
    """global_step recorded in supernet_last.ckpt/state.json; None if there is no readable one."""
    step = (_last_state(run_dir) or {}).get("global_step")
    return step if isinstance(step, int) else None


def lock_holder(run_dir: Path) -> Optional[str]:
    """Who holds the run directory's lock ('pid P on host H since T (what)'), or None if no process does.

    Probes with a shared, non-blocking flock that is released at once, so a
    live holder is told from a lock file a crashed process left behind (a
    start in that same instant is refused like any second writer and can be
    run again).
    """
    from edgeflownas.locks import describe_holder, lock_path

    path = lock_path(run_dir)
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return describe_holder(path)
        except OSError:  # a filesystem without flock: nothing can be said about a holder
            return None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def _planned_epochs(run_dir: Path) -> Optional[int]:
    manifest = _read_json(Path(run_dir) / rd.MANIFEST) or {}
    epochs = manifest.get("resolved_config", {}).get("train", {}).get("num_epochs")
    return epochs if isinstance(epochs, int) else None


def run_status(run_dir: Path, trial: str, record: Optional[Mapping[str, Any]] = None,
               job_state: Optional[slurm.JobState] = None) -> TrialStatus:
    """Status of one run directory; ``record`` (submission log) and ``job_state`` (sacct) for a submitted run."""
    run_dir = Path(run_dir)
    damaged = None
    try:
        epoch, best, column = history_summary(run_dir)
    except CheckpointError as error:  # one damaged run does not hide the others
        (epoch, best, column), damaged = (None, None, None), str(error)
    holder = lock_holder(run_dir)
    logs = {"train.log": str(run_dir / TRAIN_LOG)}
    if record is not None:
        logs.update({"slurm stdout": record.get("stdout"), "slurm stderr": record.get("stderr")})
        finished = read_result(run_dir) is not None
        state = job_state.state if job_state else "UNKNOWN"
    else:
        planned = _planned_epochs(run_dir)
        finished = epoch is not None and planned is not None and epoch >= planned
        state = "RUNNING" if holder else "IDLE"
    return TrialStatus(trial=trial, job_id=record["job_id"] if record else None, state=state,
                       requeues=job_state.requeues if job_state else None, epoch=epoch, best_epe=best,
                       best_column=column, last_step=last_checkpoint_step(run_dir), finished=finished,
                       run_dir=run_dir, lock_holder=holder, logs={k: v for k, v in logs.items() if v},
                       damaged=damaged)


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a training run's artifacts."""
    return any((Path(path) / name).exists() for name in RUN_MARKERS)


def find_target(target: str, output_root: Optional[Path]) -> Path:
    """<output_root>/TARGET with --output_root; else TARGET if it is a directory; else it under the default root."""
    if output_root is None and Path(target).is_dir():
        return Path(target)
    check_experiment_name(target)
    if output_root is None:
        from edgeflownas.config import resolve

        output_root = Path(resolve(None).config.experiment.output_root)
    directory = Path(output_root) / target
    if not directory.is_dir():
        raise SubmitError(f"'{target}' is neither a directory nor an experiment under {output_root} ({directory} "
                          "not found): pass a run directory, or the experiment name with --output_root")
    return directory


def status_of(directory: Path) -> Tuple[List[TrialStatus], str]:
    """(rows, note) for an experiment with a submission log, one local run directory, or a folder of runs."""
    directory = Path(directory)
    if record_path(directory).is_file():
        return experiment_status(directory)
    if is_run_dir(directory):
        row = run_status(directory, directory.name)
        if row.damaged:  # nothing else to show: the damage is the answer
            raise CheckpointError(row.damaged)
        return [row], ""
    runs = sorted(child for child in directory.iterdir() if child.is_dir() and is_run_dir(child))
    if not runs:
        raise SubmitError(f"no runs found in {directory}: expected a run directory ({rd.MANIFEST}, {rd.HISTORY}, "
                          "supernet_last.ckpt) or an experiment directory holding runs or "
                          f"{record_path(directory).name}")
    return [run_status(run, run.name) for run in runs], ""


def experiment_status(experiment_dir: Path) -> Tuple[List[TrialStatus], str]:
    """(rows, note) of a submitted experiment; note explains a missing sacct."""
    experiment_dir = Path(experiment_dir)
    latest = latest_by_trial(read_records(experiment_dir))
    if not latest:
        raise SubmitError(f"no submissions recorded in {record_path(experiment_dir)}: check the experiment name "
                          "and --output_root")
    note = ""
    if shutil.which("sacct"):
        states = slurm.query_states(r["job_id"] for r in latest.values())
    else:
        states, note = {}, "sacct not found on PATH: SLURM states unknown"
    rows = [run_status(Path(record["run_dir"]), trial or experiment_dir.name, record, states.get(record["job_id"]))
            for trial, record in sorted(latest.items(), key=lambda item: item[0] or "")]
    return rows, note


def damaged_line(row: TrialStatus) -> str:
    """The one line that reports a damaged run (its file and the byte or line)."""
    return f"{row.trial}: damaged: {row.damaged}"


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def format_status(rows: List[TrialStatus], note: str = "") -> str:
    """Fixed-width table, one line per run, then each run's log files and lock holder."""
    column = next((row.best_column for row in rows if row.best_column), "mean_epe")
    header = ["TRIAL", "JOB", "STATE", "REQUEUES", "EPOCH", f"BEST_{column.upper()}", "LAST_STEP", "FINISHED",
              "RUN_DIR"]
    table = [header] + [[
        r.trial, _cell(r.job_id), r.state, _cell(r.requeues), _cell(r.epoch),
        "-" if r.best_epe is None else f"{r.best_epe:.4f}", _cell(r.last_step), "yes" if r.finished else "no",
        str(r.run_dir)] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in table]
    for row in rows:
        lines.append(f"{row.trial}: " + "; ".join(f"{name} {path}" for name, path in row.logs.items()))
        if row.lock_holder:
            lines.append(f"{row.trial}: run directory locked by {row.lock_holder}")
        if row.damaged:
            lines.append(damaged_line(row))
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines)
