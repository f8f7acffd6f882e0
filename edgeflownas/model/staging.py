"""Training batches held in device variables: one host->device copy per fairness cycle, made while the last one runs.

The 3 paths of a cycle train on the same batch.  Fed through placeholders, the
batch would cross to the device once per ``sess.run``, i.e. 3 times a cycle.
``BatchStaging`` keeps it in non-trainable resource variables instead
(``LOCAL_VARIABLES``: never checkpointed, so resume is untouched).  There are
two such buffers (slots 0 and 1); the network reads the slot fed to ``slot``
(``tensors``, a ``tf.cond`` that reads only that slot's variables), so the
runs of a cycle feed the slot number, the arch code and the BN mode, not the batch.

Prefetch: the first path run of a cycle also assigns the *next* cycle's batch
(fed to ``placeholders``) to the other slot (``prefetch_op``: the slot not fed
to ``slot``).  The other path runs fetch ``prefetch_op`` too but feed
``nothing`` (an empty batch, 0 bytes), which copies nothing: every path run is
then the same ``sess.run`` signature, whatever the slot and whether there is a
next batch, and pays Grappler's pass once.  Nothing in that run depends on the
assign, so on a GPU the copy runs on the host->device
stream while the path computes, and the next cycle starts on a batch already on
the device; on the CPU it is one memcpy either way.  A batch that is not in a
slot (the first of an epoch, the first after a resume) is staged by a run of
its own.  ``BatchStaging`` remembers, per session, which batch object each slot
holds (``hold``/``release``, around the runs that assign them): a slot is
assigned only through ``stage`` or ``TrainGraph.run_cycle``, one thread per
session, and the local variables are initialised once per session.  Batches
are never changed after the loader made them (its arrays are read-only).

Why variables and not a ``tf.data`` iterator kept for the cycle: an iterator's
element is consumed by the run that gets it, so keeping it for 3 runs needs the
same variables anyway, and the loader (shard order as a function of (seed,
epoch), exact resume position) stays the one host-side ``BatchLoader``: the
trainer counts the batches it trained, not the one prefetched, so a checkpoint
taken between cycles resumes at the right batch.

``tensors`` stay feedable: evaluation feeds them directly (a feed replaces the
read), so evaluation neither needs nor disturbs the staged batches.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

SCOPE = "staged_batch/"


class BatchStaging:
    """Two slots of device variables shaped like the given placeholders (any batch size), their assigns and a read."""

    def __init__(self, placeholders: Sequence[tf.Tensor]) -> None:
        self.placeholders: Tuple[tf.Tensor, ...] = tuple(placeholders)
        names = [placeholder.op.name for placeholder in self.placeholders]
        # Outside XLA clusters (runtime.xla): XLA cannot change a variable's shape, as the first stage does.
        with tf.compat.v1.name_scope(SCOPE), tf.xla.experimental.jit_scope(compile_ops=False):
            self.slot = tf.compat.v1.placeholder_with_default(tf.constant(0, tf.int32), [], name="slot")
            buffers = [[_buffer(placeholder, f"slot{slot}/{name}") for placeholder, name in
                        zip(self.placeholders, names)] for slot in (0, 1)]
            reads = tf.cond(tf.equal(self.slot, 0), lambda: [v.read_value() for v in buffers[0]],
                            lambda: [v.read_value() for v in buffers[1]], name="read_slot")
            self.tensors: Tuple[tf.Tensor, ...] = tuple(
                tf.identity(tf.ensure_shape(read, placeholder.shape), name=f"{name}_read")
                for read, placeholder, name in zip(reads, self.placeholders, names))
            self.stage_ops: Tuple[tf.Operation, ...] = tuple(
                tf.group(*[v.assign(p, read_value=False) for v, p in zip(slot_buffers, self.placeholders)],
                         name=f"stage_slot{slot}") for slot, slot_buffers in enumerate(buffers))
            # Branch 0 copies nothing (an empty batch was fed), branch 1 + s copies into slot s = 1 - slot.
            nonempty = tf.shape(self.placeholders[0])[0] > 0
            branch = tf.where(nonempty, 2 - self.slot, 0)
            self.prefetch_op: tf.Operation = tf.switch_case(
                branch, [_nothing] + [_assigner(slot_buffers, self.placeholders) for slot_buffers in buffers],
                name="prefetch").op
        # Fed to the placeholders of a run with prefetch_op and nothing to copy: 0 bytes, same signature.
        self.nothing: Dict[tf.Tensor, np.ndarray] = {
            placeholder: np.zeros([0] + placeholder.shape.as_list()[1:], placeholder.dtype.as_numpy_dtype)
            for placeholder in self.placeholders}
        self._held: Dict[int, Tuple[Any, Any]] = {}  # slot -> (session, batch) it holds

    def feed(self, arrays: Sequence[np.ndarray]) -> Dict[tf.Tensor, np.ndarray]:
        """The feed of a stage op: one array per placeholder, in order."""
        return dict(zip(self.placeholders, arrays))

    def stage_feed(self, batch: Any) -> Dict[tf.Tensor, np.ndarray]:
        """The feed of a stage op for a ``Batch`` (img0, img1, flow)."""
        return self.feed((batch.img0, batch.img1, batch.flow))

    def slot_of(self, sess: Any, batch: Any) -> Optional[int]:
        """The slot holding ``batch`` (that very object) in ``sess``, or None."""
        for slot, (held_sess, held_batch) in self._held.items():
            if held_sess is sess and held_batch is batch:
                return slot
        return None

    def stage(self, sess: Any, slot: int, batch: Any) -> None:
        """Copy ``batch`` into ``slot`` by a run of its own (the way to stage outside ``TrainGraph.run_cycle``)."""
        self.release(slot)
        sess.run(self.stage_ops[slot], self.stage_feed(batch))
        self.hold(sess, slot, batch)

    def hold(self, sess: Any, slot: int, batch: Any) -> None:
        """Record that a run that assigned ``batch`` to ``slot`` in ``sess`` has finished."""
        self._held[slot] = (sess, batch)

    def release(self, slot: int) -> None:
        """Forget what ``slot`` holds (before a run that may overwrite it: if the run fails, nothing is assumed)."""
        self._held.pop(slot, None)


def _nothing() -> tf.Tensor:
    """The prefetch branch that copies nothing."""
    return tf.constant(False)


def _assigner(slot_buffers: Sequence[tf.Variable], placeholders: Sequence[tf.Tensor]):
    """The prefetch branch that copies the fed batch into ``slot_buffers``."""

    def assign() -> tf.Tensor:
        with tf.control_dependencies([v.assign(p, read_value=False) for v, p in zip(slot_buffers, placeholders)]):
            return tf.constant(True)

    return assign


def _buffer(placeholder: tf.Tensor, name: str) -> tf.Variable:
    """A local resource variable shaped like ``placeholder`` (first dimension free), starting empty."""
    shape = placeholder.shape.as_list()
    empty = tf.zeros([0] + shape[1:], placeholder.dtype)
    return tf.compat.v1.Variable(empty, trainable=False, name=name, use_resource=True, shape=shape,
                                 collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])
