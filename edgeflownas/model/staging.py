"""A training batch held in device variables for a whole fairness cycle: one host->device copy per cycle.

The 3 paths of a cycle train on the same batch.  Fed through placeholders, the
batch crosses to the device once per ``sess.run``, i.e. 3 times a cycle.
``BatchStaging`` keeps it in non-trainable resource variables instead
(``LOCAL_VARIABLES``: never checkpointed, so resume is untouched): ``stage_op``
assigns them from the placeholders in one run with the feed, and the network
reads ``tensors`` (the variables' values) in the path runs that follow, which
feed only the arch code and the BN mode.  The variables live on the device the
graph is built on (the session's ``tf.device``; resource variables have GPU
kernels for uint8 and float32).

Why variables and not a ``tf.data`` iterator kept for the cycle: an iterator's
element is consumed by the run that gets it, so keeping it for 3 runs needs the
same variables anyway, and the loader (shard order as a function of (seed,
epoch), exact resume position) stays the one host-side ``BatchLoader``.

``tensors`` stay feedable: evaluation feeds them directly (a feed replaces the
read), so evaluation neither needs nor disturbs the staged batch.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import tensorflow as tf

SCOPE = "staged_batch/"


class BatchStaging:
    """Device variables shaped like the given placeholders (any batch size), their assign op and their reads."""

    def __init__(self, placeholders: Sequence[tf.Tensor]) -> None:
        self.placeholders: Tuple[tf.Tensor, ...] = tuple(placeholders)
        variables, reads = [], []
        with tf.compat.v1.name_scope(SCOPE):
            for placeholder in self.placeholders:
                name = placeholder.op.name
                shape = placeholder.shape.as_list()
                empty = tf.zeros([0] + shape[1:], placeholder.dtype)
                variable = tf.compat.v1.Variable(empty, trainable=False, name=name, use_resource=True, shape=shape,
                                                 collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])
                variables.append(variable)
                reads.append(tf.identity(variable.read_value(), name=f"{name}_read"))
        self.variables = variables
        self.tensors: Tuple[tf.Tensor, ...] = tuple(reads)
        # Outside XLA clusters (runtime.xla): XLA cannot change a variable's shape, as the first stage does.
        with tf.xla.experimental.jit_scope(compile_ops=False):
            self.stage_op = tf.group(*[v.assign(p, read_value=False) for v, p in zip(variables, self.placeholders)],
                                     name=f"{SCOPE}stage")

    def feed(self, arrays: Sequence[np.ndarray]) -> Dict[tf.Tensor, np.ndarray]:
        """The feed of ``stage_op``: one array per placeholder, in order."""
        return dict(zip(self.placeholders, arrays))
