"""The run directory ``<output_root>/<experiment.name>`` and its small artifacts (docs/design.md §6).

Layout::

    train_manifest.json     what ran: seed, config hash, git commit, data, versions, SLURM ids
    config.yaml             the fully resolved config of the latest start (--config accepts it as is)
    eval_pool_12.json       the fixed evaluation pool with its seed
    eval_epe_history.csv    one row per epoch: epoch averages, lr, mean/std EPE, new_best, per-subnet EPE
    fairness_counts.json    option counts over the complete cycles trained so far
    supernet_last.ckpt/     TF checkpoint + state.json (resume point), swapped in atomically
    supernet_best.ckpt/     same, for the best mean EPE so far
    tensorboard/            event files with the scalars of the CSV

Every JSON/CSV write is atomic.  The history and counts are also stored in the
checkpoint state, so after a crash they are rewritten from the checkpoint
that resume uses and never disagree with it.

A run directory holding results (``RESULTS``) is never written over by a new
start: ``results_in`` names them, ``last_problem`` says why ``last`` cannot be
resumed, and ``move_aside`` is the only way an old run makes room (renamed to
``<run>.old-<timestamp>``, never deleted).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edgeflownas.atomic_io import write_csv_atomic, write_json_atomic
from edgeflownas.config import ResolvedConfig, repo_root
from edgeflownas.config_types import ExperimentConfig
from edgeflownas.errors import CheckpointError, NoSuchRunError
from edgeflownas.nas.arch_codec import BLOCK_NAMES, ArchCode, arch_name
from edgeflownas.nas.fair_sampler import PATHS_PER_CYCLE, fairness_gap
from edgeflownas.train.checkpoint import MODEL_PREFIX, STATE_FILE, has_checkpoint

MANIFEST = "train_manifest.json"
RESOLVED_CONFIG = "config.yaml"
HISTORY = "eval_epe_history.csv"
FAIRNESS = "fairness_counts.json"
LAST = "supernet_last.ckpt"
BEST = "supernet_best.ckpt"
TENSORBOARD = "tensorboard"
MEAN_PREFIX = "mean_epe_"
NEW_BEST = "new_best"
INT_COLUMNS = ("epoch", "global_step", "fairness_gap")  # read back as int; every other cell is a float
# Artifacts that hold trained numbers; a start that would write over any of them is refused.
RESULTS = (LAST, BEST, HISTORY, FAIRNESS)

SLURM_ENV = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT",
             "SLURM_JOB_NAME", "SLURM_JOB_PARTITION", "SLURM_NODELIST", "SLURM_CLUSTER_NAME")


def require_run(run_dir: Path) -> Path:
    """``run_dir`` if it is a directory; NoSuchRunError (a mistyped --run) otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is not a directory" if run_dir.exists() else "does not exist"
        raise NoSuchRunError(f"no such run: {run_dir} {what} (--run takes a run directory, "
                          "<output_root>/<experiment_name>)")
    return run_dir


def run_dir_for(experiment: ExperimentConfig) -> Path:
    """The run directory of an experiment: ``<output_root>/<name>``."""
    return Path(experiment.output_root) / experiment.name


def mean_column(pool_size: int) -> str:
    """Name of the pool-mean EPE column, ``mean_epe_12`` for the default pool."""
    return f"{MEAN_PREFIX}{pool_size}"


def std_column(pool_size: int) -> str:
    """Name of the pool-std EPE column, ``std_epe_12`` for the default pool."""
    return f"std_epe_{pool_size}"


# The EPE of predicting zero flow on the same validation batches: a pool mean near it has learnt only the mean flow.
ZERO_FLOW = "zero_flow_epe"


def history_header(pool: Sequence[ArchCode]) -> List[str]:
    """CSV columns: counters, epoch averages, lr, pool summary, zero-flow EPE, skipped steps, new_best, per-subnet EPE."""
    # new_best: 1 on an evaluated epoch that is a new best by the early-stop rule (early_stop module doc), else 0.
    return [
        "epoch", "global_step", "train_loss_epoch_avg",
        "train_grad_norm_before_clip_epoch_avg", "train_grad_norm_after_clip_epoch_avg", "lr",
        mean_column(len(pool)), std_column(len(pool)), ZERO_FLOW, "fairness_gap", "skipped_steps", NEW_BEST,
    ] + [f"epe_{arch_name(code)}" for code in pool]


def write_history(run_dir: Path, pool: Sequence[ArchCode], rows: Sequence[Mapping[str, Any]]) -> None:
    """Rewrite eval_epe_history.csv from the full list of epoch rows."""
    write_csv_atomic(Path(run_dir) / HISTORY, history_header(pool), rows)


def _cell(path: Path, line: int, column: str, text: str) -> Optional[float]:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise CheckpointError(f"{path} line {line}, column {column}: {text!r} is not a number") from None
    if column in INT_COLUMNS and math.isfinite(value):
        return int(value)
    return value


def _row(path: Path, line: int, raw: Mapping[Optional[str], Any], width: int) -> Dict[str, Optional[float]]:
    """One history line as numbers; CheckpointError naming the line if it has more cells than the header."""
    if None in raw:  # csv.DictReader keeps the cells beyond the header under the key None
        raise CheckpointError(f"{path} is damaged: line {line} has {width + len(raw[None])} cells, the header "
                              f"{width}; resume the run (it rewrites the file from the checkpoint's state) or "
                              "restore the file")
    return {key: _cell(path, line, key, text or "") for key, text in raw.items()}


def read_history(path: Path) -> Tuple[List[str], List[Dict[str, Optional[float]]]]:
    """(columns, rows) of eval_epe_history.csv, cells as numbers (empty: None); CheckpointError if missing/malformed."""
    path = Path(path)
    reader = None
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = [_row(path, reader.line_num, raw, len(columns)) for raw in reader]
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: the run has not finished an epoch yet, "
                              "or this is not an efnas run directory") from None
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{path} is damaged: byte {error.start} ({error.object[error.start:error.start + 1]!r}) "
                              "is not UTF-8 text; the checkpoint's state holds the history: resume the run (it "
                              "rewrites the file) or restore the file") from None
    except csv.Error as error:
        where = f" line {reader.line_num}" if reader is not None else ""
        raise CheckpointError(f"{path} is damaged ({error}){where}: resume the run (it rewrites the file from the "
                              "checkpoint's state) or restore the file") from None
    if "epoch" not in columns:
        raise CheckpointError(f"{path} has no 'epoch' column (found: {', '.join(columns) or 'nothing'})")
    return columns, rows


def pool_mean_column_in(columns: Sequence[str]) -> Optional[str]:
    """The ``mean_epe_<pool size>`` column among a history's columns, or None."""
    return next((column for column in columns if column.startswith(MEAN_PREFIX)), None)


def best_history_row(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """The row of the run's best epoch by its own rule (the last one marked new_best); None if none is marked."""
    if NEW_BEST not in columns:
        return None
    marked = [row for row in rows if row.get(NEW_BEST) == 1]
    return marked[-1] if marked else None


def recorded_pool_size(plan: Any, where: Path) -> int:
    """pool_size of a recorded evaluation plan: a manifest's ``eval`` or a checkpoint state's ``plan``."""
    if not isinstance(plan, dict) or not isinstance(plan.get("pool_size"), int):
        raise CheckpointError(f"{where} records no evaluation plan with an integer pool_size (found {plan!r}): "
                              "written by an older efnas, or not a training artifact")
    return plan["pool_size"]


def fairness_document(counts: np.ndarray, complete_cycles: int, seed: int) -> Dict[str, Any]:
    """JSON-ready option counts over complete fairness cycles."""
    return {
        "seed": int(seed),
        "complete_cycles": int(complete_cycles),
        "paths_trained": int(complete_cycles) * PATHS_PER_CYCLE,
        "fairness_gap": fairness_gap(counts),
        "option_counts": {name: [int(c) for c in counts[b]] for b, name in enumerate(BLOCK_NAMES)},
    }


def write_fairness(run_dir: Path, counts: np.ndarray, complete_cycles: int, seed: int) -> None:
    """Rewrite fairness_counts.json."""
    write_json_atomic(Path(run_dir) / FAIRNESS, fairness_document(counts, complete_cycles, seed))


def git_commit() -> Optional[str]:
    """HEAD of the source checkout (suffix ``-dirty`` if tracked files changed); None outside git."""
    root = repo_root()
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def versions() -> Dict[str, Optional[str]]:
    """Versions of Python and the libraries that decide the numbers."""
    from edgeflownas import __version__

    found: Dict[str, Optional[str]] = {"python": platform.python_version(), "efnas": __version__}
    for module in ("tensorflow", "numpy", "h5py", "cv2"):
        imported = sys.modules.get(module) or __import__(module)
        found[module] = getattr(imported, "__version__", None)
    return found


def slurm_ids() -> Dict[str, str]:
    """The SLURM job identifiers present in the environment (empty outside SLURM)."""
    return {key: os.environ[key] for key in SLURM_ENV if key in os.environ}


def build_manifest(resolved: ResolvedConfig, plan: Mapping[str, Any], data: Mapping[str, Any],
                   starts: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """The train_manifest.json document (every field docs/design.md §6 lists)."""
    cfg = resolved.config
    train = cfg.train
    return {
        "experiment": cfg.experiment.name,
        "seed": cfg.experiment.seed,
        "config_hash": resolved.config_hash,
        "config_path": resolved.path,
        "git_commit": git_commit(),
        "input_shape": [plan["batch_size"], cfg.data.input_height, cfg.data.input_width, 3],
        "supernet_mode": train.supernet_mode,
        # What the run is: a supernet, or one fixed subnet (a retrain; its checkpoints keep the supernet_* names).
        "run_kind": "fixed_arch" if train.supernet_mode == "fixed_arch" else "supernet",
        "fixed_arch_code": list(cfg.model.fixed_arch_code) if train.supernet_mode == "fixed_arch" else None,
        "optimizer": {"name": "adam", "beta1": train.adam_beta1, "beta2": train.adam_beta2,
                      "epsilon": train.adam_epsilon},
        # warmup_steps W > 0: the cosine times min(1, (step + 1) / W) (train/graph.py learning_rate).
        "lr_schedule": {"name": "cosine_decay", "lr": train.lr, "lr_min": train.lr_min,
                        "decay_steps": plan["planned_steps"], "steps_per_epoch": plan["steps_per_epoch"],
                        "num_epochs": train.num_epochs, "warmup_steps": train.lr_warmup_steps},
        "wd": train.weight_decay,
        "wd_applies_to": "conv kernels (L2, added to each path's loss)",
        "grad_clip": {"type": "global_norm", "max_norm": train.grad_clip_norm,
                      "applied_to": "mean of the accumulated path gradients"},
        "paths_per_step": plan["paths_per_step"],
        # Stated outright (also in resolved_config): they change what the numbers of a run mean.
        "input_normalization": cfg.model.input_normalization,
        "option_init": cfg.model.option_init,
        "residual_init": cfg.model.residual_init,
        "loss_uncertainty_form": cfg.loss.uncertainty_form,
        "nonfinite": {"policy": train.nonfinite, "max_skipped_steps": train.max_skipped_steps},
        "samples": {"train_samples": data["train_samples"], "val_samples": data["val_samples"]},
        "data": dict(data),
        "eval": dict(plan["eval"]),
        "versions": versions(),
        "hostname": socket.gethostname(),
        "slurm": slurm_ids(),
        "starts": list(starts),
        "resolved_config": resolved.values,
    }


def start_record(global_step: int, mode: str, run_dir: Optional[Path] = None,
                 data: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """One entry of the manifest's ``starts`` list: when, where, from which step and on which data."""
    record: Dict[str, Any] = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "mode": mode,
                              "global_step": int(global_step), "hostname": socket.gethostname(),
                              "slurm": slurm_ids(), "cwd": os.getcwd()}
    if run_dir is not None:
        record["run_dir"] = str(Path(run_dir).absolute())
    if data is not None:
        record["data"] = dict(data)
    return record


def previous_starts(run_dir: Path) -> List[Dict[str, Any]]:
    """The ``starts`` list of the run's manifest (empty if there is none yet)."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("starts", []))


def results_in(run_dir: Path) -> List[str]:
    """The result artifacts (``RESULTS``) present in ``run_dir``, in that order."""
    return [name for name in RESULTS if (Path(run_dir) / name).exists()]


def last_problem(run_dir: Path) -> Optional[str]:
    """Why ``<run_dir>/supernet_last.ckpt`` cannot be resumed ('... is missing'), or None if it is complete."""
    last = Path(run_dir) / LAST
    if has_checkpoint(last):
        return None
    if not last.is_dir():
        return f"{last} is missing"
    missing = [name for name in (STATE_FILE, f"{MODEL_PREFIX}.index") if not (last / name).is_file()]
    return f"{last} is damaged: {' and '.join(missing)} missing"


def move_aside(run_dir: Path) -> Path:
    """Rename ``run_dir`` to ``<run_dir>.old-<UTC timestamp>`` (never deleting anything); returns the new path."""
    run_dir = Path(run_dir)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    suffix = 1
    while target.exists():
        suffix += 1
        target = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{suffix}")
    shutil.move(str(run_dir), str(target))
    return target


def write_manifest(run_dir: Path, manifest: Mapping[str, Any]) -> None:
    """Rewrite train_manifest.json."""
    write_json_atomic(Path(run_dir) / MANIFEST, dict(manifest))


def write_resolved_config(run_dir: Path, resolved: ResolvedConfig) -> Path:
    """Write config.yaml: every resolved value, which ``--config`` reads back to the same config hash."""
    from edgeflownas.atomic_io import write_text_atomic
    from edgeflownas.config_yaml import dump_yaml

    header = (f"# Fully resolved config of {resolved.config.experiment.name} (config_hash {resolved.config_hash}),\n"
              f"# from {resolved.path or 'a mapping'} + command line + schema defaults.\n"
              "# Pass it back as is: efnas train --config <this file>\n")
    path = Path(run_dir) / RESOLVED_CONFIG
    write_text_atomic(path, header + dump_yaml(resolved.values))
    return path
