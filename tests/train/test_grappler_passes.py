"""The trimmed Grappler set (``runtime.session_config``) trains and evaluates bit-identically to TensorFlow's default.

Grappler runs at every new ``sess.run`` signature, and on a supernet graph it
was most of a short run's start-up.  ``session_config`` runs its passes once
instead of twice and leaves out those that cannot change a CPU graph's numbers;
the reference here is TensorFlow's own default ``RewriterConfig`` (what efnas
used before), on the same seed and batches: every loss, norm, learning rate,
every variable after the cycles and an evaluation forward pass must be equal
to the last bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeflownas.config import resolve
from edgeflownas.config_types import RuntimeConfig
from edgeflownas.data.loader import Batch
from edgeflownas.model.bn_modes import BN_INFER
from edgeflownas.nas.fair_sampler import cycle_paths

HEIGHT, WIDTH, BATCH, SEED, CYCLES = 32, 48, 2, 5, 3
RUNTIME = RuntimeConfig(gpu_device=None, deterministic=True, debug_trace=False, fast_mode=False,
                        graph_optimizations=True)


def test_session_config_runs_grappler_once_without_the_passes_that_change_nothing():
    from edgeflownas.train.runtime import GRAPPLER_PASSES_OFF, session_config

    rewrite = session_config(RUNTIME).graph_options.rewrite_options
    assert rewrite.meta_optimizer_iterations == rewrite.ONE
    assert not rewrite.disable_meta_optimizer
    assert GRAPPLER_PASSES_OFF and all(getattr(rewrite, name) == rewrite.OFF for name in GRAPPLER_PASSES_OFF)
    assert rewrite.memory_optimization == rewrite.NO_MEM_OPT
    # The passes whose rewrites change results in the last bits stay at TensorFlow's default.
    assert rewrite.remapping == rewrite.DEFAULT and rewrite.constant_folding == rewrite.DEFAULT
    off = session_config(RuntimeConfig(None, True, False, False, graph_optimizations=False))
    assert off.graph_options.rewrite_options.disable_meta_optimizer


def _run(config):
    """(cycle reports, final variables, one evaluation forward pass) under a session ConfigProto."""
    import tensorflow as tf

    from edgeflownas.train.graph import TrainGraph
    from edgeflownas.train.plan import make_plan

    cfg = resolve(None, {"data.input_height": HEIGHT, "data.input_width": WIDTH, "train.batch_size": BATCH,
                         "model.init_neurons": 8, "train.steps_per_epoch": CYCLES}).config
    rng = np.random.default_rng(0)
    shape = (BATCH, HEIGHT, WIDTH)
    batches = [Batch(img0=rng.integers(0, 256, shape + (3,), dtype=np.uint8),
                     img1=rng.integers(0, 256, shape + (3,), dtype=np.uint8),
                     flow=rng.normal(0.0, 3.0, shape + (2,)).astype(np.float32),
                     ids=tuple(f"s{index}" for index in range(BATCH))) for _ in range(CYCLES)]
    tf.config.experimental.enable_op_determinism()
    tf_graph = tf.Graph()
    with tf_graph.as_default():
        tf.compat.v1.set_random_seed(SEED)
        graph = TrainGraph(cfg.model, cfg.loss, cfg.train, (HEIGHT, WIDTH), make_plan(cfg, 100, 2))
        variables = tf.compat.v1.global_variables()
    with tf.compat.v1.Session(graph=tf_graph, config=config) as sess:
        sess.run(graph.init_op)
        reports = []
        for cycle, batch in enumerate(batches):
            upcoming = batches[cycle + 1] if cycle + 1 < len(batches) else None
            reports.append(tuple(graph.run_cycle(sess, batch, cycle_paths(SEED, cycle), upcoming)))
        flow = sess.run(graph.net.flow, graph.feed(batches[0], cycle_paths(SEED, 0)[0], BN_INFER))
        return reports, sess.run(variables), flow


@pytest.mark.slow
def test_trimmed_grappler_is_bit_identical_to_the_default_set():
    import tensorflow as tf

    from edgeflownas.train.runtime import session_config

    default = tf.compat.v1.ConfigProto(allow_soft_placement=True)  # TensorFlow's Grappler defaults
    reports, final, flow = _run(default)
    trimmed_reports, trimmed_final, trimmed_flow = _run(session_config(RUNTIME))
    assert trimmed_reports == reports
    assert [r[-1] for r in reports] == list(range(1, CYCLES + 1)) and all(r[1] for r in reports)
    assert len(final) == len(trimmed_final)
    assert all(np.array_equal(a, b) for a, b in zip(final, trimmed_final))
    assert np.array_equal(flow, trimmed_flow)
