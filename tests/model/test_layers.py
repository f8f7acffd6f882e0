"""BatchNorm modes (TRAIN / INFER / RECAL) and Conv2D on tiny tensors, including inside a tf.cond branch."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from edgeflownas.model.layers import BN_EPSILON, BN_INFER, BN_MOMENTUM, BN_RECAL, BN_TRAIN, BatchNorm, Conv2D

CHANNELS = 3


class TinyBN:
    """Two BN layers on a placeholder: ``direct`` always applied, ``branch`` only when ``use_branch`` is fed True."""

    def __init__(self) -> None:
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.x = tf.compat.v1.placeholder(tf.float32, [None, 2, 2, CHANNELS])
            self.mode = tf.compat.v1.placeholder_with_default(tf.constant(BN_INFER), [])
            self.use_branch = tf.compat.v1.placeholder_with_default(False, [])
            self.direct = BatchNorm("direct", CHANNELS, self.mode)
            self.branch = BatchNorm("branch", CHANNELS, self.mode)
            self.y = self.direct(self.x)
            self.z = tf.cond(self.use_branch, lambda: self.branch(self.x), lambda: tf.identity(self.x))
            layers = (self.direct, self.branch)
            self.reset = tf.group(*[bn.reset_recal_op() for bn in layers])
            self.apply = tf.group(*[bn.apply_recal_op() for bn in layers])
            self.session = tf.compat.v1.Session(graph=self.graph)
            self.session.run(tf.compat.v1.global_variables_initializer())

    def run(self, fetches, x, mode, use_branch=False):
        return self.session.run(fetches, {self.x: x, self.mode: mode, self.use_branch: use_branch})

    def moving(self, bn):
        return self.session.run([bn.moving_mean, bn.moving_variance])


@pytest.fixture
def tiny():
    built = TinyBN()
    yield built
    built.session.close()


def batch(seed: int, shift: float = 0.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(shift, 2.0, (4, 2, 2, CHANNELS))).astype(np.float32)


def moments(x: np.ndarray):
    return x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))


def test_train_normalises_with_batch_stats_and_updates_the_ema(tiny):
    x = batch(0, shift=5.0)
    y = tiny.run(tiny.y, x, BN_TRAIN)
    mean, var = moments(x)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + BN_EPSILON), rtol=1e-4, atol=1e-5)
    moving_mean, moving_var = tiny.moving(tiny.direct)
    np.testing.assert_allclose(moving_mean, (1 - BN_MOMENTUM) * mean, rtol=1e-5)
    np.testing.assert_allclose(moving_var, BN_MOMENTUM + (1 - BN_MOMENTUM) * var, rtol=1e-5)


@pytest.mark.parametrize("mode", [BN_INFER, BN_RECAL], ids=["infer", "recal"])
def test_moving_stats_change_only_in_train_mode(tiny, mode):
    tiny.run(tiny.y, batch(0, 3.0), BN_TRAIN)
    before = tiny.moving(tiny.direct)
    tiny.run(tiny.y, batch(1, -3.0), mode)
    np.testing.assert_array_equal(tiny.moving(tiny.direct), before)


def test_infer_normalises_with_the_moving_stats(tiny):
    tiny.run(tiny.y, batch(0, 3.0), BN_TRAIN)
    moving_mean, moving_var = tiny.moving(tiny.direct)
    x = batch(1)
    np.testing.assert_allclose(tiny.run(tiny.y, x, BN_INFER), (x - moving_mean) / np.sqrt(moving_var + BN_EPSILON),
                               rtol=1e-4, atol=1e-5)


def test_recal_sets_the_true_average_of_the_batch_statistics(tiny):
    tiny.run(tiny.y, batch(0, 9.0), BN_TRAIN)  # stale statistics that must not leak into the result
    tiny.session.run(tiny.reset)
    batches = [batch(seed, shift) for seed, shift in ((1, -2.0), (2, 0.0), (3, 4.0))]
    for x in batches:
        tiny.run([tiny.y, tiny.z], x, BN_RECAL, use_branch=False)
    assert tiny.session.run(tiny.direct.recal_count) == 3.0
    assert tiny.session.run(tiny.branch.recal_count) == 0.0
    branch_before = tiny.moving(tiny.branch)
    tiny.session.run(tiny.apply)
    stats = [moments(x) for x in batches]
    moving_mean, moving_var = tiny.moving(tiny.direct)
    np.testing.assert_allclose(moving_mean, np.mean([m for m, _ in stats], axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(moving_var, np.mean([v for _, v in stats], axis=0), rtol=1e-5)
    np.testing.assert_array_equal(tiny.moving(tiny.branch), branch_before)  # saw no batch: untouched


def test_recal_accumulates_inside_a_taken_cond_branch_and_reset_zeroes(tiny):
    x = batch(4, 1.5)
    tiny.session.run(tiny.reset)
    tiny.run(tiny.z, x, BN_RECAL, use_branch=True)
    tiny.run(tiny.z, x, BN_TRAIN, use_branch=True)  # EMA update inside the branch, no accumulation
    assert tiny.session.run(tiny.branch.recal_count) == 1.0
    np.testing.assert_allclose(tiny.session.run(tiny.branch.recal_mean_sum), moments(x)[0], rtol=1e-5)
    np.testing.assert_allclose(tiny.moving(tiny.branch)[0], (1 - BN_MOMENTUM) * moments(x)[0], rtol=1e-5)
    tiny.session.run(tiny.reset)
    assert tiny.session.run(tiny.branch.recal_count) == 0.0
    assert not np.any(tiny.session.run(tiny.branch.recal_mean_sum))


def test_conv_matches_a_hand_computed_1x1_and_keeps_same_padding_ceil_sizes():
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 5, 7, 2])
        conv = Conv2D("c", 1, 2, 1, stride=2)
        y = conv(x)
        assert y.shape.as_list() == [1, 3, 4, 1]  # SAME + stride 2 -> ceil(5/2), ceil(7/2)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run([conv.kernel.assign([[[[2.0], [-1.0]]]]), conv.bias.assign([0.5])])
            value = np.arange(70, dtype=np.float32).reshape(1, 5, 7, 2)
            out = session.run(y, {x: value})
    expected = 2.0 * value[:, ::2, ::2, 0:1] - value[:, ::2, ::2, 1:2] + 0.5
    np.testing.assert_allclose(out, expected)
