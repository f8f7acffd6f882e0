"""The TensorFlow side of ``run_training``: runtime setup, graph, session, restore, the epoch loop.

Kept apart from ``api`` so everything before the first TensorFlow import
(data check, plan, resume decision) fails fast and cheaply.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from edgeflownas.config import ResolvedConfig
from edgeflownas.config_types import RuntimeConfig
from edgeflownas.errors import CheckpointError, ConfigError
from edgeflownas.nas.arch_codec import ArchCode
from edgeflownas.nas.fair_sampler import empty_counts
from edgeflownas.train import checkpoint, run_dir as rd
from edgeflownas.train.api import TrainResult
from edgeflownas.train.early_stop import EarlyStopper, EarlyStopState, request_key
from edgeflownas.train.interrupt import StopRequest
from edgeflownas.train.plan import TrainPlan


def configure_runtime(runtime: RuntimeConfig, log: Callable[[str], None]) -> Optional[str]:
    """Op determinism and GPU choice; returns the device to build on (None = TensorFlow's choice)."""
    import tensorflow as tf

    if runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    if runtime.gpu_device is None:
        log(f"device: {'GPU:0' if gpus else 'CPU'} ({len(gpus)} GPU(s) visible)")
        return None
    if not gpus:
        log(f"notice: --gpu_device {runtime.gpu_device} requested but TensorFlow sees no GPU; running on CPU")
        return None
    if runtime.gpu_device >= len(gpus):
        raise ConfigError(f"runtime.gpu_device={runtime.gpu_device} but only {len(gpus)} GPU(s) are visible "
                          f"(valid: 0..{len(gpus) - 1})")
    tf.config.set_visible_devices([gpus[runtime.gpu_device]], "GPU")
    log(f"device: GPU {runtime.gpu_device} ({gpus[runtime.gpu_device].name})")
    return "/GPU:0"


def session_config(runtime: RuntimeConfig):
    """Soft placement (CPU fallback for ops without a GPU kernel), GPU memory on demand, Grappler on/off."""
    import tensorflow as tf

    config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    if not runtime.graph_optimizations:
        config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config


def initial_state(mode: str, doc: Optional[Dict[str, Any]], resolved: ResolvedConfig, log: Callable[[str], None]):
    """(TrainState, EarlyStopper) for a fresh/inherit start or from a checkpoint's state.json.

    ``checkpoint.reset_early_stop_on_resume`` applies once per request (``early_stop.request_key``):
    a fresh or inherited start begins with fresh counters and records the request as done, a resume
    resets only if the checkpoint's counters were not already started by that same request, so a
    requeued job keeps counting.
    """
    from edgeflownas.train.trainer import TrainState

    cfg = resolved.config
    key = request_key(resolved.values["early_stop"]) if cfg.checkpoint.reset_early_stop_on_resume else None
    if mode != "resume":
        return TrainState(0, 0, empty_counts(), [], None, None), EarlyStopper(cfg.early_stop,
                                                                             EarlyStopState(reset_key=key))
    state = TrainState(int(doc["global_step"]), int(doc["epoch"]), np.asarray(doc["fairness_counts"], np.int64),
                       list(doc.get("history", [])), doc.get("best_metric"), doc.get("best_epoch"),
                       int(doc["next_batch_index"]), doc.get("partial_epoch"), int(doc.get("skipped_steps", 0)))
    stopper = EarlyStopper(cfg.early_stop, EarlyStopState.from_dict(doc.get("early_stop", {})))
    if key is not None and stopper.state.reset_key == key:
        log("checkpoint.reset_early_stop_on_resume: already applied to this run for these early_stop settings "
            f"(a requeue or a repeated command); counting goes on ({stopper.state.bad_epochs} epochs without "
            "improvement)")
    elif key is not None:
        log("checkpoint.reset_early_stop_on_resume: early-stop counters and best metric start afresh "
            "(once: a requeue of this request keeps counting)")
        stopper.reset(key)
        state.best_metric = state.best_epoch = None
    return state, stopper


def start_record(state, mode: str, source_ckpt: Optional[Path], run_dir: Path,
                 data_info: Dict[str, Any]) -> Dict[str, Any]:
    """This start's entry of the manifest's ``starts`` (with the checkpoint it read, if any)."""
    record = rd.start_record(state.global_step, mode, run_dir, data_info)
    if source_ckpt is not None:
        record["from_checkpoint"] = str(Path(source_ckpt).absolute())
    return record


def eval_batches(train_source, val_source, plan: TrainPlan, seed: int):
    """The fixed BN-recalibration batches and validation batches, loaded once."""
    from edgeflownas.train.evaluate import recal_indices, val_indices

    recal = [train_source.get_batch(row) for row in
             recal_indices(seed, len(train_source), plan.recal_batches, plan.eval_batch_size)]
    val = [val_source.get_batch(idx) for idx in val_indices(len(val_source), plan.val_batches, plan.eval_batch_size)]
    return recal, val


def picture_batch(val_source, plan: TrainPlan, count: int):
    """The fixed validation samples of the TensorBoard flow pictures (None when ``count`` is 0)."""
    from edgeflownas.train.evaluate import picture_indices

    indices = picture_indices(plan.val_samples_used, count)
    return val_source.get_batch(np.asarray(indices)) if indices else None


def train_session(resolved: ResolvedConfig, plan: TrainPlan, run_dir: Path, mode: str,
                  source_ckpt: Optional[Path], doc: Optional[Dict[str, Any]], pool: Sequence[ArchCode],
                  train_source, val_source, data_info: Dict[str, Any], log: Callable[[str], None],
                  stop: Optional[StopRequest] = None) -> TrainResult:
    """Build the graph, restore per ``mode``, run the epochs (until done, early stop or ``stop``), return the result."""
    import tensorflow as tf

    from edgeflownas.data.loader import BatchLoader
    from edgeflownas.train.evaluate import PoolEvaluator
    from edgeflownas.train.graph import TrainGraph
    from edgeflownas.train.divergence import NonfinitePolicy
    from edgeflownas.train.trainer import Trainer

    cfg = resolved.config
    seed = cfg.experiment.seed
    device = configure_runtime(cfg.runtime, log)
    tf_graph = tf.Graph()
    with tf_graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        with tf.device(device) if device else contextlib.nullcontext():
            graph = TrainGraph(cfg, plan)
        writer = tf.compat.v1.summary.FileWriter(str(run_dir / rd.TENSORBOARD))
    state, stopper = initial_state(mode, doc, resolved, log)
    fixed = tuple(cfg.model.fixed_arch_code) if cfg.train.supernet_mode == "fixed_arch" else None
    # The sample ids in every checkpoint let a resume refuse other data (start.check_same_data).
    header = {"experiment": cfg.experiment.name, "seed": seed, "config_hash": resolved.config_hash,
              "config": resolved.values, "plan": plan.to_dict(), "data": dict(data_info)}
    loader = BatchLoader(train_source, plan.batch_size, seed, cfg.data.num_workers, cfg.data.prefetch_batches)
    try:
        with tf.compat.v1.Session(graph=tf_graph, config=session_config(cfg.runtime)) as sess:
            sess.run(graph.init_op)
            restore(sess, graph, mode, source_ckpt, state, writer, log)
            tf_graph.finalize()
            recal, val = eval_batches(train_source, val_source, plan, seed)
            manifest = rd.build_manifest(resolved, plan.to_dict() | {"eval": plan.eval}, data_info,
                                         rd.previous_starts(run_dir) + [start_record(state, mode, source_ckpt,
                                                                                     run_dir, data_info)])
            rd.write_manifest(run_dir, manifest)
            rd.write_resolved_config(run_dir, resolved)
            evaluator = PoolEvaluator(graph, recal, val, log, picture_batch(val_source, plan, cfg.eval.flow_pictures))
            trainer = Trainer(sess, graph, plan, loader, evaluator, pool, run_dir, seed, fixed, stopper, state,
                              header, writer, cfg.runtime.debug_trace, cfg.train.log_every_steps, log, stop,
                              NonfinitePolicy.from_config(cfg.train))
            last_epoch = cfg.train.num_epochs
            if cfg.train.max_epochs is not None:
                last_epoch = min(last_epoch, state.epoch + cfg.train.max_epochs)
            outcome = "early_stop" if already_stopped(stopper, state.epoch, log) else "done"
            if outcome == "done" and state.epoch >= last_epoch:
                log(f"nothing to train: epoch {state.epoch} of train.num_epochs={cfg.train.num_epochs} is done")
            elif outcome == "done":
                stopper.state.stopped_epoch = None
                outcome = trainer.run(last_epoch)
    finally:
        loader.close()
        writer.close()
        train_source.close()
        val_source.close()
    return TrainResult(state.epoch, state.global_step, state.best_metric, state.best_epoch, outcome == "early_stop",
                       run_dir, state.history, stop.name if outcome == "interrupted" else None)


def already_stopped(stopper: EarlyStopper, epoch: int, log: Callable[[str], None]) -> bool:
    """True if a resumed run had stopped early and the current early-stop settings still say stop."""
    if stopper.state.stopped_epoch is None:
        return False
    cfg = stopper.cfg
    if stopper.state.bad_epochs >= cfg.patience and epoch >= cfg.min_epochs_before_early_stop:
        log(f"early stop already fired at epoch {stopper.state.stopped_epoch}; nothing to train (raise "
            "early_stop.patience or set checkpoint.reset_early_stop_on_resume to continue)")
        return True
    return False


def restore(sess, graph, mode: str, source_ckpt: Optional[Path], state, writer, log: Callable[[str], None]) -> None:
    """Load variables for ``mode`` and check the checkpoint agrees with its state.json."""
    import tensorflow as tf

    if mode == "fresh":
        log("start: fresh (weights initialised from the seed)")
        return
    prefix = checkpoint.model_prefix(source_ckpt)
    if mode == "inherit":
        with checkpoint.restoring(sess.graph, source_ckpt):
            graph.restore_weights(sess, prefix)
        log(f"start: inherit weights and BN statistics from {source_ckpt}; step, optimizer, schedule start fresh")
        return
    with checkpoint.restoring(sess.graph, source_ckpt):
        graph.restore(sess, prefix)
    step = int(sess.run(graph.global_step))
    if step != state.global_step:
        raise CheckpointError(f"{source_ckpt}: variables hold global_step {step} but state.json says "
                              f"{state.global_step}; the checkpoint is inconsistent")
    # Drop TensorBoard events an interrupted run wrote after this checkpoint.
    writer.add_session_log(tf.compat.v1.SessionLog(status=tf.compat.v1.SessionLog.START), step)
    log(f"start: resume from {source_ckpt} at epoch {state.epoch}, global_step {step}, cycle {step}")
