"""The training graph around one Supernet: gradient accumulators and one clipped Adam step.

A fairness cycle is 3 + 1 separate ``sess.run`` calls, so peak memory is one
path's.  Per path: forward + backward of its arch code in BN_TRAIN (the BN
moving statistics update on the way), gradients written to the accumulators
by ``store_op`` for the first path (overwriting, i.e. zeroing, what the last
cycle left) and ``accumulate_op`` (adding) for the others.  Then ``apply_op``
once: the accumulated gradients are **averaged** over the paths, clipped to a
global norm of ``grad_clip_norm`` and applied by Adam with a cosine-decayed
learning rate, incrementing ``global_step``.

Why the average: Adam is invariant to a constant gradient scale, so sum and
mean give the same update direction; the mean keeps the clip threshold and the
weight-decay strength at their single-path meaning (a sum would clip 3x
earlier and triple the decay).  Weight decay is ``weight_decay *
sum(tf.nn.l2_loss(kernel))`` (half the squared norm, as in TF-slim) over every
conv kernel, added to each path's loss.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf

from edgeflownas.config_types import Config
from edgeflownas.model.supernet import Supernet
from edgeflownas.train.plan import TrainPlan

CLIP_MARGIN = 1e-5


class TrainGraph:
    """Supernet + accumulators + optimizer + savers, built in the current default graph."""

    def __init__(self, cfg: Config, plan: TrainPlan) -> None:
        train = cfg.train
        self.net = net = Supernet(cfg.model, cfg.loss, cfg.data.input_height, cfg.data.input_width)
        variables = net.trainable_variables
        with tf.compat.v1.variable_scope("train"):
            self.global_step = tf.compat.v1.train.get_or_create_global_step()
            decay = tf.add_n([tf.nn.l2_loss(kernel) for kernel in net.kernel_variables])
            self.weight_decay_loss = train.weight_decay * decay
            grads = tf.gradients(net.loss + self.weight_decay_loss, variables)
            grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)]
            self.accumulators = [
                tf.compat.v1.get_variable(
                    f"grad_acc/{v.op.name}", shape=v.shape, dtype=v.dtype.base_dtype,
                    initializer=tf.compat.v1.zeros_initializer(), trainable=False, use_resource=True,
                    collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES],
                )
                for v in variables
            ]
            # The first path of a cycle overwrites the accumulators (zeroing them), the others add.
            self.store_op = tf.group(*[a.assign(g, read_value=False) for a, g in zip(self.accumulators, grads)])
            self.accumulate_op = tf.group(*[a.assign_add(g, read_value=False) for a, g in zip(self.accumulators, grads)])
            mean = [a.read_value() / float(plan.paths_per_step) for a in self.accumulators]
            # Rescaling to exactly clip_norm lands float32 norms a hair above it (5.000001); the
            # 1e-5 relative margin keeps the logged after-clip norm <= grad_clip_norm as promised.
            clipped, self.norm_before = tf.clip_by_global_norm(mean, train.grad_clip_norm * (1.0 - CLIP_MARGIN))
            self.norm_after = tf.linalg.global_norm(clipped)
            self.lr = tf.compat.v1.train.cosine_decay(
                train.lr, self.global_step, plan.planned_steps, alpha=train.lr_min / train.lr)
            optimizer = tf.compat.v1.train.AdamOptimizer(
                self.lr, beta1=train.adam_beta1, beta2=train.adam_beta2, epsilon=train.adam_epsilon)
            self.apply_op = optimizer.apply_gradients(zip(clipped, variables), global_step=self.global_step)
            with tf.control_dependencies([self.apply_op]):
                self.step_after_apply = tf.identity(self.global_step.read_value())
        # Fetching this runs the whole forward pass (and the BN writes that hang off it).
        self.forward_op = tf.group(net.preds[2])
        self._bn_inputs = [tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape) for v in net.bn_moving_variables]
        self._bn_assign = tf.group(*[v.assign(p, read_value=False)
                                     for v, p in zip(net.bn_moving_variables, self._bn_inputs)])
        # Everything a resume needs (weights, BN stats, Adam slots and powers, global_step); not the accumulators.
        self.full_saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables(), max_to_keep=None,
                                                   save_relative_paths=True)
        # Weights and BN statistics only: what a new experiment inherits from an old one.
        self.model_saver = tf.compat.v1.train.Saver(net.variables, max_to_keep=None, save_relative_paths=True)
        self.init_op = tf.group(tf.compat.v1.global_variables_initializer(),
                                tf.compat.v1.local_variables_initializer())

    def feed(self, batch, arch_code: Sequence[int], bn_mode: int) -> Dict:
        """The feed dict of one run: images, flow, arch code and BN mode."""
        net = self.net
        return {net.img0: batch.img0, net.img1: batch.img1, net.flow_gt: batch.flow,
                net.arch_code: np.asarray(arch_code, np.int32), net.bn_mode: bn_mode}

    def bn_snapshot(self, sess: tf.compat.v1.Session) -> List[np.ndarray]:
        """Current BN moving statistics (values, in ``net.bn_moving_variables`` order)."""
        return sess.run(self.net.bn_moving_variables)

    def bn_restore(self, sess: tf.compat.v1.Session, values: Sequence[np.ndarray]) -> None:
        """Put BN moving statistics back exactly as a snapshot holds them."""
        sess.run(self._bn_assign, dict(zip(self._bn_inputs, values)))

    def save(self, sess: tf.compat.v1.Session, prefix: str) -> None:
        """Write every resumable variable to a TF checkpoint at ``prefix``."""
        self.full_saver.save(sess, prefix, write_meta_graph=False, write_state=False)

    def restore(self, sess: tf.compat.v1.Session, prefix: str) -> None:
        """Restore every resumable variable from ``prefix``."""
        self.full_saver.restore(sess, prefix)

    def restore_weights(self, sess: tf.compat.v1.Session, prefix: str) -> None:
        """Restore weights and BN statistics only (optimizer and step stay fresh)."""
        self.model_saver.restore(sess, prefix)
