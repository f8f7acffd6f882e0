"""The supernet's graphs: ``EvalGraph`` (evaluation) and ``TrainGraph`` (it plus accumulators and one clipped Adam step).

``EvalGraph`` is what every evaluation needs -- the supernet, ``feed``, the
evaluation fetches (EPE and flow, one signature for every evaluation run), BN
snapshot/restore and a saver of the network's variables -- and is all
``efnas eval``, search and export build: without gradients and optimizer it
builds several times faster.  ``TrainGraph`` adds the rest.
The supernet is built first in both, so its initial weights are the same
function of the graph seed either way.

A fairness cycle (``run_cycle``) is 3 + 1 separate ``sess.run`` calls, so
peak memory is one path's: the batch is already on the device, staged while
the previous cycle ran (``model/staging.py``: the first path run copies the
next cycle's batch into a second slot; the paths' runs feed only the slot,
the arch code and the BN mode; a batch nobody prefetched costs one more run),
then per path: forward + backward of its arch code in BN_TRAIN (the BN
moving statistics update on the way), gradients written to the accumulators
by ``write_op``: the first path (``first_path`` fed True) overwrites, i.e.
zeroes, what the last cycle left, the others add.  The path runs of every
cycle are one ``sess.run`` signature (same fetches, same fed keys: the write
is chosen by ``first_path``, the prefetch by the fed slot, and runs with
nothing to prefetch feed an empty batch), so Grappler and the executor set-up
are paid once for them, not per slot and per path.  Then ``apply_op``
once: the accumulated gradients are **averaged** over the paths, clipped to a
global norm of ``grad_clip_norm`` and applied by Adam with a cosine-decayed
learning rate, incrementing ``global_step``.

The learning rate (``learning_rate``) is a function of ``global_step`` alone,
so a resumed run continues it exactly: the cosine decay from ``lr`` to
``lr_min`` over the planned steps, times ``min(1, (step + 1) / W)`` for a
linear warm-up of ``W = lr_warmup_steps > 0`` steps (step = the global step
being applied, from 0: the first step uses 1/W of the cosine, step W-1 on
the plain cosine; the warm-up scales the cosine, it does not shift it).  With
``W = 0`` no warm-up op exists, and the graph is the one built before the key.

Why the average: Adam is invariant to a constant gradient scale, so sum and
mean give the same update direction; the mean keeps the clip threshold and the
weight-decay strength at their single-path meaning (a sum would clip 3x
earlier and triple the decay).  Weight decay is ``weight_decay *
sum(tf.nn.l2_loss(kernel))`` (half the squared norm, as in TF-slim) over every
conv kernel, added to each path's loss.

Divergence guard: ``apply_op`` applies the update only if the cycle is finite
-- every path's loss (``losses_finite``, set by the first path and AND-ed by
the others), the pre-clip global norm and every BN moving statistic (the
forward passes update those before any apply).  Otherwise it changes no
weight and no Adam slot, puts the BN moving statistics back to their values
after the last applied step (``bn_backup``) and only advances
``global_step``; ``applied`` says which happened.  All in the apply's run, so
the check costs no extra ``sess.run``, and without control flow: Adam runs on
every cycle with inputs that make it the identity on a refused one
(``guarded_adam.py``), and the BN statistics and ``bn_backup`` are both
written with a ``tf.where`` of the two candidates.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from edgeflownas.config_types import LossConfig, ModelConfig, TrainConfig
from edgeflownas.model.bn_modes import BN_TRAIN
from edgeflownas.model.supernet import Supernet
from edgeflownas.nas.arch_codec import ArchCode
from edgeflownas.train.guarded_adam import GuardedAdam
from edgeflownas.train.plan import TrainPlan

CLIP_MARGIN = 1e-5


def learning_rate(train: TrainConfig, global_step: tf.Tensor, planned_steps: int) -> tf.Tensor:
    """The lr tensor at ``global_step``: cosine decay over ``planned_steps``, times the linear warm-up ramp."""
    lr = tf.compat.v1.train.cosine_decay(train.lr, global_step, planned_steps, alpha=train.lr_min / train.lr)
    if not train.lr_warmup_steps:
        return lr  # no op added: the graph and its numbers are those of a run without the key
    ramp = tf.minimum(1.0, (tf.cast(global_step, tf.float32) + 1.0) / float(train.lr_warmup_steps))
    return lr * ramp


class EvalGraph:
    """Supernet + feed + evaluation fetches + BN snapshot/restore + a network saver, built in the default graph."""

    def __init__(self, model: ModelConfig, loss: LossConfig, input_size: Tuple[int, int],
                 fixed_arch: Optional[ArchCode] = None, stage_batch: bool = False) -> None:
        # A fixed arch (a retrain) builds only that path's variables, named as in the supernet.
        self.net = net = Supernet(model, loss, input_size[0], input_size[1], fixed_arch=fixed_arch,
                                  stage_batch=stage_batch)
        # What every evaluation run fetches -- BN recalibration, EPE, predicted flow -- so that they are one
        # sess.run signature (Grappler and executor set-up are paid per signature); each run uses what it needs.
        # Fetching it runs the whole forward pass (and the BN writes that hang off it).
        self.eval_fetches = (net.epe, net.flow)
        self._bn_inputs = [tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape) for v in net.bn_moving_variables]
        self._bn_assign = tf.group(*[v.assign(p, read_value=False)
                                     for v, p in zip(net.bn_moving_variables, self._bn_inputs)])
        self._model_saver: Optional[tf.compat.v1.train.Saver] = None
        self.init_op = tf.compat.v1.global_variables_initializer()

    @property
    def model_saver(self) -> tf.compat.v1.train.Saver:
        """The saver of the network's variables: what evaluation restores and a new experiment inherits.

        Built at first use (before the graph is finalised): a training from the seed never needs it, and its
        save/restore ops for every variable cost graph construction time.
        """
        if self._model_saver is None:
            with self.net.img0.graph.as_default():
                self._model_saver = tf.compat.v1.train.Saver(self.net.variables, max_to_keep=None,
                                                             save_relative_paths=True)
        return self._model_saver

    @property
    def saver(self) -> tf.compat.v1.train.Saver:
        """The saver of the network's variables (``model_saver``)."""
        return self.model_saver

    def feed(self, batch, arch_code: Sequence[int], bn_mode: int) -> Dict:
        """The feed dict of one run: images, flow, arch code and BN mode (a staged batch is bypassed)."""
        net = self.net
        return {net.img0: batch.img0, net.img1: batch.img1, net.flow_gt: batch.flow,
                **self.path_feed(arch_code, bn_mode)}

    def path_feed(self, arch_code: Sequence[int], bn_mode: int) -> Dict:
        """The feed dict of one run on the staged batch: arch code and BN mode only."""
        net = self.net
        feed = {net.bn_mode: bn_mode}
        if net.arch_code is not None:
            feed[net.arch_code] = np.asarray(arch_code, np.int32)
        elif tuple(arch_code) != net.fixed_arch:
            raise ValueError(f"this graph is the fixed arch {net.fixed_arch}, asked to run {tuple(arch_code)}")
        return feed

    def bn_snapshot(self, sess: tf.compat.v1.Session) -> List[np.ndarray]:
        """Current BN moving statistics (values, in ``net.bn_moving_variables`` order)."""
        return sess.run(self.net.bn_moving_variables)

    def bn_restore(self, sess: tf.compat.v1.Session, values: Sequence[np.ndarray]) -> None:
        """Put BN moving statistics back exactly as a snapshot holds them."""
        sess.run(self._bn_assign, dict(zip(self._bn_inputs, values)))

    def restore_weights(self, sess: tf.compat.v1.Session, prefix: str) -> List[str]:
        """Restore weights and BN statistics from ``prefix`` by name; returns the names it lacks (kept as they are).

        A fixed-arch checkpoint (a retrain) holds one path: a supernet starting from it keeps the initial values
        of every other option's variables.
        """
        present = set(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())
        missing = [v.op.name for v in self.net.variables if v.op.name not in present]
        if not missing:
            self.model_saver.restore(sess, prefix)
            return []
        subset = [v for v in self.net.variables if v.op.name in present]
        tf.compat.v1.train.Saver(subset, save_relative_paths=True).restore(sess, prefix)
        return missing


class CycleResult(NamedTuple):
    """What one fairness cycle reports: the paths' losses, whether it was applied, norms, lr and the new step."""

    losses: List[float]
    applied: bool
    norm_before: float
    norm_after: float
    lr: float
    step: int


class TrainGraph(EvalGraph):
    """``EvalGraph`` + accumulators + optimizer + divergence guard + a saver of everything a resume needs.

    ``stage_batch`` (default): a cycle copies its batch to the device once (``model/staging.py``);
    ``False`` feeds it to every path's run, as efnas did before (kept for the equality test and the benchmark).
    """

    def __init__(self, model: ModelConfig, loss: LossConfig, train: TrainConfig, input_size: Tuple[int, int],
                 plan: TrainPlan, fixed_arch: Optional[ArchCode] = None, stage_batch: bool = True) -> None:
        super().__init__(model, loss, input_size, fixed_arch, stage_batch)
        net = self.net
        variables = net.trainable_variables
        with tf.compat.v1.variable_scope("train"):
            self.global_step = tf.compat.v1.train.get_or_create_global_step()
            decay = tf.add_n([tf.nn.l2_loss(kernel) for kernel in net.kernel_variables])
            self.weight_decay_loss = train.weight_decay * decay
            grads = tf.gradients(net.loss + self.weight_decay_loss, variables)
            grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)]
            self.accumulators = [_local_variable(f"grad_acc/{v.op.name}", v.shape, v.dtype.base_dtype,
                                                 tf.compat.v1.zeros_initializer()) for v in variables]
            self.losses_finite = _local_variable("losses_finite", [], tf.bool, tf.compat.v1.ones_initializer())
            # One flat copy of every BN moving statistic: two ops per step instead of one per variable.
            self._bn_sizes = [int(v.shape.num_elements()) for v in net.bn_moving_variables]
            self.bn_backup = _local_variable("bn_backup", [sum(self._bn_sizes)], tf.float32,
                                             tf.compat.v1.zeros_initializer())
            loss_ok = tf.math.is_finite(net.loss)
            # Every path run of a cycle runs write_op: the first (first_path fed True) overwrites the accumulators,
            # i.e. zeroes what the last cycle left, the others add.  One op for both keeps the path runs one
            # sess.run signature (Grappler and executor set-up are paid per signature); tf.where returns its
            # selected operand's bits, and a + g is assign_add's sum, so the values are store_op's/accumulate_op's.
            self.first_path = tf.compat.v1.placeholder(tf.bool, [], name="first_path")
            self.write_op = tf.group(
                *[a.assign(tf.where(self.first_path, g, a.read_value() + g), read_value=False)
                  for a, g in zip(self.accumulators, grads)],
                self.losses_finite.assign(tf.logical_and(loss_ok, tf.logical_or(
                    self.first_path, self.losses_finite.read_value())), read_value=False), name="write_gradients")
            # The same two writes as separate ops (tests and benchmarks drive a cycle by hand with them).
            self.store_op = tf.group(*[a.assign(g, read_value=False) for a, g in zip(self.accumulators, grads)],
                                     self.losses_finite.assign(loss_ok, read_value=False))
            self.accumulate_op = tf.group(
                *[a.assign_add(g, read_value=False) for a, g in zip(self.accumulators, grads)],
                self.losses_finite.assign(tf.logical_and(self.losses_finite.read_value(), loss_ok), read_value=False))
            mean = [a.read_value() / float(plan.paths_per_step) for a in self.accumulators]
            # Rescaling to exactly clip_norm lands float32 norms a hair above it (5.000001); the
            # 1e-5 relative margin keeps the logged after-clip norm <= grad_clip_norm as promised.
            clipped, self.norm_before = tf.clip_by_global_norm(mean, train.grad_clip_norm * (1.0 - CLIP_MARGIN))
            self.norm_after = tf.linalg.global_norm(clipped)
            self.lr = learning_rate(train, self.global_step, plan.planned_steps)
            bn_now = self._bn_flat()
            self.cycle_finite = tf.reduce_all(tf.stack(
                [self.losses_finite.read_value(), tf.math.is_finite(self.norm_before),
                 tf.reduce_all(tf.math.is_finite(bn_now))]))
            # No tf.cond (guarded_adam.py): Adam runs every cycle, as the identity on a refused one.  Its variables
            # are train/beta1_power, <variable>/Adam etc., the names existing checkpoints hold.
            optimizer = GuardedAdam(self.cycle_finite, self.lr, train.adam_beta1, train.adam_beta2, train.adam_epsilon)
            update = optimizer.apply_if(zip(clipped, variables), self.global_step)
            # BN statistics: this cycle's (the forward passes updated them) if it is applied, else the last applied
            # cycle's from bn_backup; written to both.  An applied cycle rewrites each statistic with its own value.
            bn_kept = tf.where(self.cycle_finite, bn_now, self.bn_backup.read_value())
            keep = [self.bn_backup.assign(bn_kept, read_value=False)]
            keep += [v.assign(tf.reshape(p, v.shape), read_value=False)
                     for p, v in zip(tf.split(bn_kept, self._bn_sizes), net.bn_moving_variables)]
            with tf.control_dependencies([update] + keep):
                self.applied = tf.identity(self.cycle_finite, name="applied")
            self.apply_op = self.applied.op
            with tf.control_dependencies([self.applied]):
                self.step_after_apply = tf.identity(self.global_step.read_value())
        # Everything a resume needs (weights, BN stats, Adam slots and powers, global_step); not the accumulators.
        self.full_saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables(), max_to_keep=None,
                                                   save_relative_paths=True)
        # Savable float variables, checked for NaN/Inf before every save.  Read and checked in NumPy: a check op
        # per variable cost ~0.4 CPU s of graph construction and ~0.3 s at its first run.  The read copies the
        # weights, Adam's slots and the BN backup to the host (about 3x the parameters, ~80 MB at 6.6 M) once per
        # save: milliseconds against the save itself.
        self.checked_variables = [v for v in tf.compat.v1.global_variables() if v.dtype.base_dtype.is_floating]
        self._keep_bn = self._backup_bn()
        init = tf.group(tf.compat.v1.global_variables_initializer(), tf.compat.v1.local_variables_initializer())
        with tf.control_dependencies([init]):
            self.init_op = self._backup_bn()

    def run_cycle(self, sess: tf.compat.v1.Session, batch, paths: Sequence[ArchCode],
                  next_batch=None) -> CycleResult:
        """One fairness cycle: each path's forward/backward into the accumulators, then the guarded apply.

        Staged (``model/staging.py``): ``batch`` is staged by a run of its own unless the previous cycle
        prefetched it, and the first path run prefetches ``next_batch`` (when given) into the other slot.
        """
        if not paths:
            raise ValueError("a cycle needs at least one path")
        staging = self.net.staging
        fetches = [self.write_op, self.net.loss]
        if staging is None:
            feeds = [self.feed(batch, code, BN_TRAIN) for code in paths]
        else:
            slot = staging.slot_of(sess, batch)
            if slot is None:
                slot = 0
                staging.stage(sess, slot, batch)
            # Every path run fetches the prefetch; all but the first feed it an empty batch (nothing to copy).
            fetches.append(staging.prefetch_op)
            feeds = [{**self.path_feed(code, BN_TRAIN), staging.slot: slot, **staging.nothing} for code in paths]
            if next_batch is not None:
                staging.release(1 - slot)
                feeds[0].update(staging.stage_feed(next_batch))
        losses = []
        for index, feed in enumerate(feeds):
            feed[self.first_path] = index == 0
            losses.append(float(sess.run(fetches, feed)[1]))
        if staging is not None and next_batch is not None:
            staging.hold(sess, 1 - slot, next_batch)
        applied, before, after, lr, step = sess.run([self.applied, self.norm_before, self.norm_after, self.lr,
                                                     self.step_after_apply])
        return CycleResult(losses, bool(applied), float(before), float(after), float(lr), int(step))

    def _bn_flat(self) -> tf.Tensor:
        """Every BN moving statistic, flattened into one vector (``bn_backup``'s layout)."""
        return tf.concat([tf.reshape(v.read_value(), [-1]) for v in self.net.bn_moving_variables], axis=0)

    def _backup_bn(self) -> tf.Operation:
        """bn_backup := the current BN moving statistics (ops created in the caller's control context)."""
        return self.bn_backup.assign(self._bn_flat(), read_value=False)

    def save(self, sess: tf.compat.v1.Session, prefix: str) -> None:
        """Write every resumable variable to a TF checkpoint at ``prefix``."""
        self.full_saver.save(sess, prefix, write_meta_graph=False, write_state=False)

    def restore(self, sess: tf.compat.v1.Session, prefix: str) -> None:
        """Restore every resumable variable from ``prefix``."""
        self.full_saver.restore(sess, prefix)
        sess.run(self._keep_bn)

    def restore_weights(self, sess: tf.compat.v1.Session, prefix: str) -> List[str]:
        """Restore weights and BN statistics only (optimizer and step stay fresh); the names the source lacks."""
        missing = super().restore_weights(sess, prefix)
        sess.run(self._keep_bn)
        return missing

    def nonfinite_variables(self, sess: tf.compat.v1.Session) -> List[str]:
        """Names of the savable variables holding a NaN or Inf (empty when all are finite)."""
        values = sess.run(self.checked_variables)
        return [v.op.name for v, value in zip(self.checked_variables, values) if not np.isfinite(value).all()]


class FeedCounter:
    """A session stand-in that counts the runs made through it and the bytes fed to them (benchmarks, tests)."""

    def __init__(self, sess: tf.compat.v1.Session) -> None:
        self.sess, self.runs, self.fed_bytes = sess, 0, 0

    def run(self, fetches, feed_dict: Optional[Dict] = None):
        """``sess.run``, counted."""
        self.runs += 1
        self.fed_bytes += sum(np.asarray(value).nbytes for value in (feed_dict or {}).values())
        return self.sess.run(fetches, feed_dict)


def _local_variable(name: str, shape, dtype, initializer) -> tf.Variable:
    """A resource variable outside checkpoints (LOCAL_VARIABLES): scratch state of the training step."""
    return tf.compat.v1.get_variable(name, shape=shape, dtype=dtype, initializer=initializer, trainable=False,
                                     use_resource=True, collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])
