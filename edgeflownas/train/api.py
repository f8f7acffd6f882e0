"""``run_training``: the one entry point of supernet training (used by ``efnas train`` and the launcher).

Order: claim the run directory (lock; see ``train.start``) -> decide fresh /
resume / inherit from its artifacts -> check the data (counts printed; an
empty split or a bad sample is fatal) -> plan -> check a resume against its
checkpoint (config, plan, sample ids) -> accept the start (only now does the
run directory keep anything) -> build the graph -> train epochs -> ``TrainResult``.

Start modes, read from artifacts only:

- **resume** (``checkpoint.resume`` and a complete ``<run_dir>/supernet_last.ckpt``,
  or ``supernet_best.ckpt`` with ``resume_from="best"``): weights, Adam slots,
  global step, data position, sampler cycle, early-stop state, history and
  fairness counts come from that checkpoint; the config must match it except
  for locations and runtime knobs (``RESUME_FREE_KEYS``), and the train/val
  sample ids must be the same.  ``checkpoint.reset_early_stop_on_resume``
  forgets the early-stop counters and the best metric once per request (see
  ``train.early_stop``).  With ``resume`` and an empty run directory, the run
  starts fresh (the first start of a requeued SLURM job).
- **inherit** (``checkpoint.resume_experiment_name``): a new experiment starts
  from the weights and BN statistics of that experiment's last checkpoint;
  step, schedule, optimizer and early stop start fresh.
- **fresh** otherwise.  A run directory that holds results is never written
  over: without a resumable ``last`` the start is refused, unless
  ``overwrite`` moves the old run aside.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from edgeflownas.config import LATER_KEYS, ResolvedConfig, flatten
from edgeflownas.data.loader import open_source
from edgeflownas.data.shards import MANIFEST_NAME, ids_digest
from edgeflownas.errors import CheckpointError, DataError, EmptySplitError
from edgeflownas.nas.arch_codec import ArchCode, arch_name
from edgeflownas.nas.eval_pool import build_pool, load_pool, pool_file_name, save_pool
from edgeflownas.train import checkpoint, run_dir as rd
from edgeflownas.train.interrupt import StopRequest
from edgeflownas.train.plan import TrainPlan, fixed_arch_of, make_plan
from edgeflownas.train.state import OpenedData, RunSetup, TrainResult
from edgeflownas.train.start import (RunClaim, RunLog, absolute_paths, check_relative_resume, check_same_data,
                                     decide_start, recorded_data_paths)

__all__ = ["RunLog", "TrainResult", "run_training", "main_summary", "check_resumable", "config_differences"]

# Config keys that may differ between a checkpoint and the run resuming it.
RESUME_FREE_KEYS = ("experiment.output_root", "data.source", "data.train_dir", "data.val_dir", "data.shards_dir",
                    "data.num_workers", "data.prefetch_batches", "train.max_epochs", "train.log_every_steps",
                    "train.nonfinite", "train.max_skipped_steps",
                    "early_stop.", "eval.every_n_epochs", "eval.flow_pictures", "runtime.", "checkpoint.", "slurm.",
                    "model.option_init")  # initial values only: a resume restores every weight


def open_data(resolved: ResolvedConfig, log: Callable[[str], None]) -> OpenedData:
    """Open (and thereby check) the train/val sources; DataError if a split is empty or has a bad sample.

    Opening a folder source scans every sample (existence, PNG and .flo headers); a
    shard source checks its manifest.  Either refuses empty splits and bad samples.
    """
    data = resolved.config.data
    sources = {}
    for split in ("train", "val"):
        where = data.shards_dir if data.source == "shards" else getattr(data, f"{split}_dir")
        try:
            sources[split] = open_source(data, split)
        except EmptySplitError as error:
            log(f"{split}_samples=0 ({data.source}: {where})")
            raise EmptySplitError(f"{split}_samples == 0, training not started: {error}") from None
        except DataError as error:
            log(f"{split}_samples: data check failed for {where}")
            raise DataError(f"data check failed, training not started: {error}") from None
        log(f"{split}_samples={len(sources[split])} ({data.source}: {where})")
        if len(sources[split]) == 0:
            raise DataError(f"{split}_samples == 0 in {where}: point --{split}_dir at an FC2 '{split}' folder")
    return OpenedData(sources["train"], sources["val"], data_description(resolved, sources["train"], sources["val"]))


def data_description(resolved: ResolvedConfig, train: Any, val: Any) -> Dict[str, Any]:
    """What the manifest records about the data: source, locations, counts, content hashes."""
    data = resolved.config.data
    info: Dict[str, Any] = {"source": data.source, "train_dir": data.train_dir, "val_dir": data.val_dir,
                            "shards_dir": data.shards_dir, "input_height": data.input_height,
                            "input_width": data.input_width, "train_samples": len(train), "val_samples": len(val)}
    for split, source in (("train", train), ("val", val)):
        info[f"{split}_sample_ids_sha256"] = ids_digest(source.sample_ids)
        info[f"{split}_content_sha256"] = source.content_digest()
    if data.source == "shards":
        manifest = Path(data.shards_dir) / MANIFEST_NAME
        info["shards_manifest_sha256"] = hashlib.sha256(manifest.read_bytes()).hexdigest()
    return info


def config_differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """Keys (outside RESUME_FREE_KEYS) whose value differs between two resolved configs (a key added later and
    missing from ``old`` had its earlier value, ``LATER_KEYS``)."""
    a, b = {**LATER_KEYS, **dict(flatten(old))}, dict(flatten(new))
    keys = sorted(set(a) | set(b))
    return [f"{k}: checkpoint {a.get(k)!r} != now {b.get(k)!r}" for k in keys
            if a.get(k) != b.get(k) and not k.startswith(RESUME_FREE_KEYS)]


def check_resumable(state: Dict[str, Any], resolved: ResolvedConfig, plan: TrainPlan, where: Path) -> None:
    """CheckpointError if the checkpoint was trained under a different experiment definition."""
    problems = config_differences(state.get("config", {}), resolved.values)
    for key in ("steps_per_epoch", "planned_steps", "paths_per_step"):
        if state.get("plan", {}).get(key) != getattr(plan, key):
            problems.append(f"plan {key}: checkpoint {state.get('plan', {}).get(key)} != now {getattr(plan, key)}")
    if problems:
        raise CheckpointError(
            f"cannot resume {where}: the config differs from the one it was trained with ("
            + "; ".join(problems) + "). Restore those values, or start a new experiment with "
            "--experiment_name NEW and checkpoint.resume_experiment_name to inherit the weights")


def prepare_pool(mode: str, run_dir: Path, seed: int, pool_size: int, fixed: Optional[ArchCode] = None) -> tuple:
    """The evaluation pool: read back on resume, built and saved otherwise; a fixed-arch run's is its own code."""
    if fixed is not None:
        save_pool(run_dir / pool_file_name(1), seed, (fixed,))
        return (fixed,)
    path = run_dir / pool_file_name(pool_size)
    if mode == "resume":
        pool_seed, pool = load_pool(path)
        if pool_seed != seed or len(pool) != pool_size:
            raise CheckpointError(f"{path} was built for seed {pool_seed} / size {len(pool)}, "
                                  f"the run has seed {seed} / pool_size {pool_size}")
        return pool
    pool = build_pool(seed, pool_size)
    save_pool(path, seed, pool)
    return pool


def run_training(resolved: ResolvedConfig, run_dir: Optional[Path] = None, stop: Optional[StopRequest] = None,
                 overwrite: bool = False, resume_from: str = "last") -> TrainResult:
    """Train (or resume) the supernet described by ``resolved``; artifacts go to ``run_dir``.

    ``stop`` (see ``train.interrupt``) ends the run at the next step boundary with
    ``supernet_last`` saved there; the result then names the signal.  ``overwrite``
    moves a run directory holding results aside (``<run>.old-<timestamp>``) and
    starts afresh; ``resume_from="best"`` resumes from ``supernet_best``.
    """
    configured = resolved
    configured_root = resolved.config.experiment.output_root
    resolved = absolute_paths(resolved)
    cfg = resolved.config
    run_dir = Path(run_dir).absolute() if run_dir is not None else rd.run_dir_for(cfg.experiment)
    if cfg.checkpoint.resume and not overwrite:
        check_relative_resume(configured_root, run_dir)
    log = RunLog(run_dir / "train.log", deferred=True)
    with RunClaim(run_dir, f"efnas train {cfg.experiment.name}", log) as claim:
        log(f"efnas train: experiment={cfg.experiment.name} run_dir={run_dir} config_hash={resolved.config_hash}")
        start = decide_start(resolved, run_dir, log, overwrite, resume_from)
        state_doc = checkpoint.read_state(start.source) if start.mode == "resume" else None
        if state_doc is not None:
            resolved = recorded_data_paths(resolved, configured, state_doc, log)
        data = open_data(resolved, log)
        try:
            plan = make_plan(cfg, len(data.train), len(data.val))
            for notice in plan.notices:
                log(f"notice: {notice}")
            if state_doc is not None:
                check_resumable(state_doc, resolved, plan, start.source)
                check_same_data(state_doc, data.info, start.source, log)
            if start.source is not None:  # intact files, finite variables, same architecture
                checkpoint.verify_checkpoint(start.source, resolved.values)
            claim.accept(start.move_aside)
            pool = prepare_pool(start.mode, run_dir, cfg.experiment.seed, plan.pool_size, fixed_arch_of(cfg))
        except BaseException:
            data.close()
            raise
        fixed = fixed_arch_of(cfg)
        evaluation = (f"eval: pool={plan.pool_size} bn_recal_batches={plan.recal_batches}" if fixed is None else
                      f"fixed-arch run of {arch_name(fixed)} (one path, its own BN statistics; no fairness, no pool, "
                      "no recalibration) eval: its val EPE")
        log(f"plan: batch_size={plan.batch_size} steps_per_epoch={plan.steps_per_epoch} num_epochs={plan.num_epochs} "
            f"planned_steps={plan.planned_steps} paths_per_step={plan.paths_per_step} "
            f"{evaluation} val_batches={plan.val_batches} x batch {plan.eval_batch_size}")
        # TensorFlow is imported only now: everything above fails fast without it.
        from edgeflownas.train.session import train_session

        setup = RunSetup(resolved, plan, run_dir, pool, start.mode, start.source, state_doc)
        return train_session(setup, data, log, stop)


def main_summary(result: TrainResult) -> str:
    """Short human summary of a finished invocation (artifact paths, EPE per epoch)."""
    lines = [f"run directory: {result.run_dir}",
             f"epochs done: {result.epochs_done}  global_step: {result.global_step}"
             + ("  (stopped early)" if result.stopped_early else "")]
    for row in result.history:
        epe = next((v for k, v in row.items() if k.startswith("mean_epe_")), None)
        zero = row.get(rd.ZERO_FLOW)
        shown = f"{epe:.4f}" if isinstance(epe, float) else "-"
        if isinstance(epe, float) and isinstance(zero, float) and zero > 0:
            shown += f"  (zero-flow {zero:.4f}: {epe / zero:.2f}x)"
        lines.append(f"  epoch {row['epoch']:>3}  step {row['global_step']:>6}  "
                     f"train_loss_avg {row['train_loss_epoch_avg']:.4f}  mean_epe {shown}")
    if result.best_mean_epe is not None:
        lines.append(f"best mean EPE {result.best_mean_epe:.4f} at epoch {result.best_epoch}")
    if result.interrupted_by:
        lines.append(f"interrupted by {result.interrupted_by} at global_step {result.global_step}: "
                     f"{result.run_dir / rd.LAST} holds that position; continue with --resume")
    for name in (rd.BEST, rd.LAST, rd.MANIFEST, rd.HISTORY, rd.FAIRNESS, "eval_pool_*.json", rd.TENSORBOARD):
        lines.append(f"  {run_dir_entry(result.run_dir, name)}")
    return "\n".join(lines)


def run_dir_entry(run_dir: Path, name: str) -> str:
    """Path of one artifact for the summary (globs resolved)."""
    matches = sorted(run_dir.glob(name))
    return str(matches[0]) if matches else f"{run_dir / name} (not written)"

