"""``GuardedAdam`` (no control flow) steps bit-identically to Adam under a ``tf.cond``, and a refused step changes nothing.

The reference is the guard as efnas built it before: ``tf.cond(apply, Adam's
apply_gradients, global_step += 1)``.  Both run the same gradient sequence,
with NaN and Inf steps among finite ones, from the same weights; after every
step each weight, Adam slot, beta power and the step counter must hold the
same bytes, and a refused step must leave them (but the step) as they were.
"""

from __future__ import annotations

import numpy as np
import pytest

SHAPES = [(3, 3, 4, 5), (5,), (7, 2)]
# Per step: apply or refuse, and what the refused step's gradient holds.
STEPS = ["ok", "ok", "nan", "ok", "inf", "ok", "ok", "nan", "ok"]


def _gradients(rng):
    """One gradient sequence: normal values, NaN/Inf in one element of every gradient of a refused step."""
    sequence = []
    for kind in STEPS:
        grads = [rng.normal(0.0, 1.0, shape).astype(np.float32) for shape in SHAPES]
        if kind != "ok":
            for grad in grads:
                grad.flat[0] = np.nan if kind == "nan" else np.inf
        sequence.append(grads)
    return sequence


def _train(guarded: bool, initial, sequence):
    """The bytes of every variable (weights, slots, powers, step) before and after each step."""
    import tensorflow as tf

    from edgeflownas.train.guarded_adam import GuardedAdam

    with tf.Graph().as_default():
        weights = [tf.compat.v1.get_variable(f"w{index}", initializer=value, use_resource=True)
                   for index, value in enumerate(initial)]
        step = tf.compat.v1.train.get_or_create_global_step()
        grads = [tf.compat.v1.placeholder(tf.float32, shape) for shape in SHAPES]
        finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
        lr = tf.compat.v1.train.cosine_decay(0.01, step, 20, alpha=0.1)  # a tensor, as in training
        if guarded:
            update = GuardedAdam(finite, lr, 0.9, 0.999, 1e-8).apply_if(zip(grads, weights), step)
        else:
            optimizer = tf.compat.v1.train.AdamOptimizer(lr, beta1=0.9, beta2=0.999, epsilon=1e-8)

            def skip():
                with tf.control_dependencies([step.assign_add(1, read_value=False)]):
                    return tf.constant(False)

            def apply():
                with tf.control_dependencies([optimizer.apply_gradients(zip(grads, weights), global_step=step)]):
                    return tf.constant(True)

            update = tf.cond(finite, apply, skip)
        variables = tf.compat.v1.global_variables()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            states = [{v.op.name: value.tobytes() for v, value in zip(variables, sess.run(variables))}]
            for values in sequence:
                sess.run(update, dict(zip(grads, values)))
                states.append({v.op.name: value.tobytes() for v, value in zip(variables, sess.run(variables))})
    return states


@pytest.mark.parametrize("seed", [0, 1])
def test_guarded_adam_equals_adam_under_a_cond_and_a_refused_step_changes_nothing(seed):
    rng = np.random.default_rng(seed)
    initial = [rng.normal(0.0, 0.5, shape).astype(np.float32) for shape in SHAPES]
    sequence = _gradients(rng)
    reference, guarded = _train(False, initial, sequence), _train(True, initial, sequence)
    names = set(reference[0])
    assert names == set(guarded[0])
    assert {"beta1_power", "beta2_power", "global_step", "w0/Adam", "w0/Adam_1"} <= names
    for index, (want, got) in enumerate(zip(reference, guarded)):
        assert want == got, (index, [name for name in want if want[name] != got[name]])
    for index, kind in enumerate(STEPS):
        before, after = guarded[index], guarded[index + 1]
        changed = sorted(name for name in before if before[name] != after[name])
        if kind == "ok":  # every weight, both slots of each and both powers moved
            assert len(changed) == len(names)
        else:
            assert changed == ["global_step"], (index, changed)


def test_a_fixed_arch_training_graph_has_no_control_flow_but_the_staged_batch_slots():
    """A retrain builds its one path and the guarded step without any If/Case (the staging's slot choice aside)."""
    import tensorflow as tf

    from edgeflownas.config import resolve
    from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE
    from edgeflownas.train.graph import TrainGraph
    from edgeflownas.train.plan import make_plan

    cfg = resolve(None, {"data.input_height": 32, "data.input_width": 48, "model.init_neurons": 8,
                         "train.supernet_mode": "fixed_arch",
                         "model.fixed_arch_code": list(EDGEFLOWNET_BASELINE)}).config
    with tf.Graph().as_default() as graph:
        TrainGraph(cfg.model, cfg.loss, cfg.train, (32, 48), make_plan(cfg, 100, 2), EDGEFLOWNET_BASELINE)
        control_flow = sorted(op.name for op in graph.get_operations()
                              if op.type in ("If", "StatelessIf", "Case", "StatelessCase"))
    assert control_flow == ["staged_batch/prefetch/indexed_case", "staged_batch/read_slot"]
