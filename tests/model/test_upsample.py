"""model.upsample=conv_resize: same variables, the supernet path equals its fixed-arch network, a training
cycle runs and changes the weights, the order changes the prediction, and an unknown order is one line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from edgeflownas.errors import ConfigError
from edgeflownas.model.supernet import BN_INFER, Supernet

pytestmark = pytest.mark.slow

MIXED = (2, 1, 0, 2, 0, 1, 2, 1, 0)


def _predict(model_cfg, loss_cfg, size, batch, fixed_arch=None, values=None):
    """(full-resolution prediction in BN_INFER, {variable name: value}) from seed 1 or ``values``."""
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(1)
        net = Supernet(model_cfg, loss_cfg, size[0], size[1], fixed_arch=fixed_arch)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            if values is not None:
                for v in net.variables:
                    v.load(values[v.op.name], session)
            feed = {net.img0: batch[0], net.img1: batch[1], net.bn_mode: BN_INFER}
            if fixed_arch is None:
                feed[net.arch_code] = list(MIXED)
            values_now = dict(zip([v.op.name for v in net.variables], session.run(net.variables)))
            return session.run(net.preds[2], feed), values_now


def test_conv_resize_supernet_path_equals_its_fixed_arch_network_and_differs_from_resize_conv(cfg, size,
                                                                                              make_batch):
    conv_resize = dataclasses.replace(cfg.model, upsample="conv_resize")
    batch = make_batch(0)
    supernet_pred, values = _predict(conv_resize, cfg.loss, size, batch)
    fixed_pred, _ = _predict(conv_resize, cfg.loss, size, batch, fixed_arch=MIXED, values=values)
    np.testing.assert_allclose(fixed_pred, supernet_pred, rtol=1e-5, atol=1e-4)
    resize_conv_pred, resize_conv_values = _predict(cfg.model, cfg.loss, size, batch)
    assert sorted(resize_conv_values) == sorted(values)  # the same variables in both orders
    assert not np.allclose(resize_conv_pred, supernet_pred, atol=1e-3)  # the order is a real change


def test_conv_resize_trains_a_cycle(cfg, size, make_batch):
    from edgeflownas.data.loader import Batch
    from edgeflownas.nas.fair_sampler import cycle_paths
    from edgeflownas.train.graph import TrainGraph
    from edgeflownas.train.plan import make_plan

    model = dataclasses.replace(cfg.model, upsample="conv_resize", init_neurons=8)
    img0, img1, flow = make_batch(3)
    batch = Batch(img0, img1, flow, ("a", "b"))
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(2)
        graph = TrainGraph(model, cfg.loss, cfg.train, size[:2], make_plan(cfg, 100, 2))
        with tf.compat.v1.Session() as sess:
            sess.run(graph.init_op)
            before = sess.run(graph.net.trainable_variables)
            result = graph.run_cycle(sess, batch, cycle_paths(2, 0))
            after = sess.run(graph.net.trainable_variables)
    assert result.applied and result.step == 1 and all(np.isfinite(result.losses))
    assert sum(not np.array_equal(a, b) for a, b in zip(before, after)) > len(before) // 4


def test_unknown_upsample_order_is_a_config_error(cfg, size):
    with tf.Graph().as_default(), pytest.raises(ConfigError, match="model.upsample"):
        Supernet(dataclasses.replace(cfg.model, upsample="transposed"), cfg.loss, size[0], size[1])
