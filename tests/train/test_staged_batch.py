"""The staged-batch cycle (one host->device copy per cycle) trains bit-identically to feeding every path's run.

The reference is the cycle as efnas ran it before staging, kept verbatim here:
an unstaged graph, each path's ``sess.run`` fed the whole batch.  Same seed,
same batches, CPU with op determinism: every loss, norm and learning rate and
every variable after the cycles must be equal to the last bit, whether each
cycle stages its own batch or the previous cycle prefetched it.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeflownas.config import resolve
from edgeflownas.config_types import RuntimeConfig
from edgeflownas.model.bn_modes import BN_TRAIN
from edgeflownas.nas.fair_sampler import cycle_paths

pytestmark = pytest.mark.slow

HEIGHT, WIDTH, BATCH, SEED, CYCLES = 32, 48, 2, 5, 4
FIXED = (0, 0, 0, 0, 2, 1, 2, 2, 2)


def _train(mode: str, fixed_arch, grappler: bool, batches):
    """(initial variables, per-cycle reports, final variables) of CYCLES cycles."""
    import tensorflow as tf

    from edgeflownas.train.graph import TrainGraph
    from edgeflownas.train.plan import make_plan
    from edgeflownas.train.runtime import session_config

    cfg = resolve(None, {"data.input_height": HEIGHT, "data.input_width": WIDTH, "train.batch_size": BATCH,
                         "model.init_neurons": 8, "train.steps_per_epoch": CYCLES}).config
    plan = make_plan(cfg, 100, 2)
    tf.config.experimental.enable_op_determinism()
    tf_graph = tf.Graph()
    with tf_graph.as_default():
        tf.compat.v1.set_random_seed(SEED)
        graph = TrainGraph(cfg.model, cfg.loss, cfg.train, (HEIGHT, WIDTH), plan, fixed_arch, mode != "fed")
        variables = tf.compat.v1.global_variables()
    runtime = RuntimeConfig(gpu_device=None, deterministic=True, debug_trace=False, fast_mode=False,
                            graph_optimizations=grappler)
    reports = []
    with tf.compat.v1.Session(graph=tf_graph, config=session_config(runtime)) as sess:
        sess.run(graph.init_op)
        initial = sess.run(variables)
        for cycle, batch in enumerate(batches):
            paths = (fixed_arch,) if fixed_arch else cycle_paths(SEED, cycle)
            if mode == "staged":
                reports.append(tuple(graph.run_cycle(sess, batch, paths)))
            elif mode == "prefetched":  # as the trainer runs it: each cycle stages the next batch
                upcoming = batches[cycle + 1] if cycle + 1 < len(batches) else None
                reports.append(tuple(graph.run_cycle(sess, batch, paths, upcoming)))
            else:  # the pre-staging trainer's cycle, verbatim
                losses = []
                for index, code in enumerate(paths):
                    write = graph.store_op if index == 0 else graph.accumulate_op
                    _, loss = sess.run([write, graph.net.loss], graph.feed(batch, code, BN_TRAIN))
                    losses.append(float(loss))
                applied, before, after, lr, step = sess.run([graph.applied, graph.norm_before, graph.norm_after,
                                                             graph.lr, graph.step_after_apply])
                reports.append((losses, bool(applied), float(before), float(after), float(lr), int(step)))
        final = sess.run(variables)
    return [v.op.name for v in variables], initial, reports, final


@pytest.mark.parametrize("fixed_arch, grappler", [(None, False), (None, True), (FIXED, False)],
                         ids=["supernet", "supernet-grappler", "fixed_arch"])
def test_staged_cycle_is_bit_identical_to_feeding_every_path(fixed_arch, grappler, random_batches):
    batches = random_batches(CYCLES, BATCH, HEIGHT, WIDTH, 0)
    names, initial_fed, fed, final_fed = _train("fed", fixed_arch, grappler, batches)
    for mode in ("staged", "prefetched"):
        names_staged, initial_staged, staged, final_staged = _train(mode, fixed_arch, grappler, batches)
        assert names == names_staged  # the staging variables are local: not checkpointed
        for a, b in zip(initial_fed, initial_staged):
            assert np.array_equal(a, b)  # staging does not shift the seeded initial weights
        assert staged == fed, mode
        assert [r[-1] for r in staged] == list(range(1, CYCLES + 1))
        assert all(r[1] for r in staged)
        changed = 0
        for name, a, b, start in zip(names, final_fed, final_staged, initial_fed):
            assert np.array_equal(a, b), (mode, name)
            changed += not np.array_equal(a, start)
        assert changed > len(names) // 4  # the cycles did train


def test_a_prefetched_cycle_feeds_one_batch_in_four_runs_and_reads_the_right_slot(random_batches):
    """Fed: 3 batches in 4 runs; staged alone: 1 batch in 5 runs; prefetched: 1 batch (the next) in 4 runs.

    The batches differ, so a cycle reading a stale slot would give other losses than the fed graph.
    """
    import tensorflow as tf

    from edgeflownas.train.graph import FeedCounter, TrainGraph
    from edgeflownas.train.plan import make_plan

    cfg = resolve(None, {"data.input_height": HEIGHT, "data.input_width": WIDTH, "train.batch_size": BATCH,
                         "model.init_neurons": 8}).config
    batches = random_batches(4, BATCH, HEIGHT, WIDTH, 0)
    batch_bytes = batches[0].img0.nbytes + batches[0].img1.nbytes + batches[0].flow.nbytes
    counts, losses = {}, {}
    for mode in ("fed", "staged", "prefetched"):
        with tf.Graph().as_default():
            tf.compat.v1.set_random_seed(SEED)
            graph = TrainGraph(cfg.model, cfg.loss, cfg.train, (HEIGHT, WIDTH), make_plan(cfg, 100, 2),
                               stage_batch=mode != "fed")
            with tf.compat.v1.Session() as raw:
                raw.run(graph.init_op)
                sess = FeedCounter(raw)
                counts[mode], losses[mode] = [], []
                for cycle, batch in enumerate(batches):
                    runs, fed = sess.runs, sess.fed_bytes
                    upcoming = batches[cycle + 1] if mode == "prefetched" and cycle + 1 < len(batches) else None
                    losses[mode] += graph.run_cycle(sess, batch, cycle_paths(SEED, cycle), upcoming).losses
                    counts[mode].append((sess.runs - runs, (sess.fed_bytes - fed) // batch_bytes))
                with pytest.raises(ValueError, match="at least one path"):  # it would record an unmade prefetch
                    graph.run_cycle(sess, batches[0], (), batches[1])
                # A batch the last cycle did not prefetch (the first after a resume) is staged by its own run.
                runs = sess.runs
                losses[mode] += graph.run_cycle(sess, batches[1], cycle_paths(SEED, 4)).losses
                assert sess.runs - runs == (4 if mode == "fed" else 5)
    assert counts["fed"] == [(4, 3)] * 4
    assert counts["staged"] == [(5, 1)] * 4
    assert counts["prefetched"] == [(5, 2)] + [(4, 1)] * 2 + [(4, 0)]  # the first stages its own + the next
    assert losses["staged"] == losses["fed"] and losses["prefetched"] == losses["fed"]


def test_the_loader_does_not_reuse_a_buffer_a_staging_slot_still_holds():
    """On CPU TensorFlow adopts a 64-byte aligned feed's memory as the variable's value (no copy); the loader's
    reused batch buffers must therefore stay taken until the slot lets go of them, not until Python does."""
    import gc

    import tensorflow as tf

    from edgeflownas.data.loader import BatchBuffers
    from edgeflownas.model.staging import BatchStaging

    buffers = BatchBuffers(BATCH, HEIGHT, WIDTH)
    with tf.Graph().as_default():
        placeholders = [tf.compat.v1.placeholder(dtype, [None, HEIGHT, WIDTH, channels]) for dtype, channels in
                        ((tf.uint8, 3), (tf.uint8, 3), (tf.float32, 2))]
        staging = BatchStaging(placeholders)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.local_variables_initializer())
            staged = buffers.take(BATCH)
            for array, value in zip(staged, (11, 22, 3.5)):
                array[...] = value
            sess.run(staging.stage_ops[0], staging.feed(staged))
            del staged, array
            gc.collect()
            for _ in range(3):  # the loader writing its next batches
                for array in buffers.take(BATCH):
                    array[...] = 0
            img0, img1, flow = sess.run(staging.tensors, {staging.slot: 0})
    assert (img0 == 11).all() and (img1 == 22).all() and (flow == 3.5).all()
