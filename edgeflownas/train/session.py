"""The TensorFlow side of ``run_training``: runtime setup, graph, session, restore, the epoch loop.

``api.run_training`` decides everything before TensorFlow (``state.RunSetup``,
``state.OpenedData``) and hands it over here; nothing here imports ``api``.

Kept apart from ``api`` so everything before the first TensorFlow import
(data check, plan, resume decision) fails fast and cheaply.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from edgeflownas.config import ResolvedConfig
from edgeflownas.data.loader import BatchLoader, worker_count
from edgeflownas.errors import CheckpointError
from edgeflownas.nas.fair_sampler import empty_counts
from edgeflownas.train import checkpoint, run_dir as rd
from edgeflownas.train.divergence import NonfinitePolicy
from edgeflownas.train.early_stop import EarlyStopper, EarlyStopState, request_key
from edgeflownas.train.eval_data import eval_batches, picture_batch
from edgeflownas.train.evaluate import PoolEvaluator
from edgeflownas.train.graph import TrainGraph
from edgeflownas.train.interrupt import StopRequest
from edgeflownas.train.plan import fixed_arch_of
from edgeflownas.train.runtime import configure_runtime, open_session
from edgeflownas.train.state import EpochSettings, OpenedData, RunSetup, TrainResult, TrainState
from edgeflownas.train.tensorboard import start_summaries
from edgeflownas.train.trainer import SessionParts, Trainer


def initial_state(mode: str, doc: Optional[Dict[str, Any]], resolved: ResolvedConfig, log: Callable[[str], None]):
    """(TrainState, EarlyStopper) for a fresh/inherit start or from a checkpoint's state.json.

    ``checkpoint.reset_early_stop_on_resume`` applies once per request (``early_stop.request_key``):
    a fresh or inherited start begins with fresh counters and records the request as done, a resume
    resets only if the checkpoint's counters were not already started by that same request, so a
    requeued job keeps counting.
    """
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


def train_session(setup: RunSetup, data: OpenedData, log: Callable[[str], None],
                  stop: Optional[StopRequest] = None) -> TrainResult:
    """Build the graph, restore per the start mode, run the epochs (until done, early stop or ``stop``), the result."""
    resolved, plan, run_dir = setup.resolved, setup.plan, setup.run_dir
    cfg = resolved.config
    seed = cfg.experiment.seed
    device = configure_runtime(cfg.runtime, log)
    tf_graph = tf.Graph()
    fixed = fixed_arch_of(cfg)
    with tf_graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        with tf.device(device) if device else contextlib.nullcontext():
            graph = TrainGraph(cfg.model, cfg.loss, cfg.train, (cfg.data.input_height, cfg.data.input_width), plan,
                               fixed)
        writer = tf.compat.v1.summary.FileWriter(str(run_dir / rd.TENSORBOARD))
    state, stopper = initial_state(setup.mode, setup.state_doc, resolved, log)
    # The sample ids in every checkpoint let a resume refuse other data (start.check_same_data).
    header = {"experiment": cfg.experiment.name, "seed": seed, "config_hash": resolved.config_hash,
              "config": resolved.values, "plan": plan.to_dict(), "data": dict(data.info)}
    loader = BatchLoader(data.train, plan.batch_size, seed, worker_count(cfg.data.num_workers, data.train),
                         cfg.data.prefetch_batches)
    try:
        with open_session(tf_graph, cfg.runtime) as sess:
            sess.run(graph.init_op)
            restore(sess, graph, setup.mode, setup.source_ckpt, state, writer, log)
            for summary in start_summaries(resolved.values):  # config as text, hparams (tensorboard module)
                writer.add_summary(summary, state.global_step)
            tf_graph.finalize()
            recal, val = eval_batches(data.train, data.val, plan, seed)
            record = start_record(state, setup.mode, setup.source_ckpt, run_dir, data.info)
            manifest = rd.build_manifest(resolved, plan.to_dict() | {"eval": plan.eval}, data.info,
                                         rd.previous_starts(run_dir) + [record])
            rd.write_manifest(run_dir, manifest)
            rd.write_resolved_config(run_dir, resolved)
            evaluator = PoolEvaluator(graph, recal, val, log, picture_batch(data.val, plan, cfg.eval.flow_pictures),
                                      cfg.runtime.debug_trace)
            settings = EpochSettings(plan, tuple(setup.pool), run_dir, seed, fixed, header, cfg.runtime.debug_trace,
                                     cfg.train.log_every_steps, log)
            trainer = Trainer(settings, SessionParts(sess, graph, loader, evaluator, writer), stopper, state, stop,
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
        data.close()
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
    if mode == "fresh":
        log("start: fresh (weights initialised from the seed)")
        return
    prefix = checkpoint.model_prefix(source_ckpt)
    if mode == "inherit":
        with checkpoint.restoring(sess.graph, source_ckpt):
            missing = graph.restore_weights(sess, prefix)
        log(f"start: inherit weights and BN statistics from {source_ckpt}; step, optimizer, schedule start fresh")
        if missing:
            total = len(graph.net.variables)
            log(f"notice: {source_ckpt} holds {total - len(missing)} of the network's {total} variables (a "
                f"fixed-arch checkpoint holds one path); the other {len(missing)} keep their initial values "
                f"(e.g. {', '.join(missing[:3])})")
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
