"""Every path run of every cycle is one ``sess.run`` signature (Grappler and executor set-up are paid per signature).

A signature is what a run fetches and which tensors it feeds.  The path runs
differ in whether they are the first of the cycle, which slot they read,
whether they prefetch a next batch and into which slot: none of that may make
a new signature.  Whole training of a few cycles: stage (a batch nobody
prefetched), path runs, apply -- three signatures, two when every run is fed.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import pytest

from edgeflownas.config import resolve
from edgeflownas.nas.fair_sampler import cycle_paths

HEIGHT, WIDTH, BATCH, SEED = 32, 48, 2, 5


class SignatureLog:
    """A session stand-in that records each run's signature: (fetched names, fed names), both sorted."""

    def __init__(self, sess) -> None:
        self.sess = sess
        self.signatures: List[Tuple[Tuple[str, ...], Tuple[str, ...]]] = []
        self.bytes_fed: List[int] = []

    def run(self, fetches, feed_dict: Dict = None):
        """``sess.run``, recorded."""
        import tensorflow as tf

        feed_dict = feed_dict or {}
        self.signatures.append((tuple(sorted(f.name for f in tf.nest.flatten(fetches))),
                                tuple(sorted(t.name for t in feed_dict))))
        self.bytes_fed.append(sum(np.asarray(v).nbytes for v in feed_dict.values()))
        return self.sess.run(fetches, feed_dict)


@pytest.mark.parametrize("stage_batch", [True, False], ids=["staged", "fed"])
def test_the_path_runs_of_every_cycle_are_one_signature(stage_batch, random_batches):
    import tensorflow as tf

    from edgeflownas.train.graph import TrainGraph
    from edgeflownas.train.plan import make_plan

    cfg = resolve(None, {"data.input_height": HEIGHT, "data.input_width": WIDTH, "train.batch_size": BATCH,
                         "model.init_neurons": 8}).config
    batches = random_batches(4, BATCH, HEIGHT, WIDTH, 1)
    # (batch, next batch): stage + prefetch into slot 1, read 1 + prefetch into 0, read 0 without a next batch,
    # a batch nobody prefetched (staged by its own run into slot 0) + prefetch into 1, read 1 without a next batch.
    cycles = [(0, 1), (1, 2), (2, None), (3, 0), (0, None)]
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(SEED)
        graph = TrainGraph(cfg.model, cfg.loss, cfg.train, (HEIGHT, WIDTH), make_plan(cfg, 100, 2),
                           stage_batch=stage_batch)
        with tf.compat.v1.Session() as raw:
            raw.run(graph.init_op)
            sess = SignatureLog(raw)
            kinds = []
            for cycle, (index, upcoming) in enumerate(cycles):
                runs = len(sess.signatures)
                paths = cycle_paths(SEED, cycle)
                result = graph.run_cycle(sess, batches[index], paths, None if upcoming is None else batches[upcoming])
                assert result.applied and len(result.losses) == 3
                made = len(sess.signatures) - runs
                staged_alone = stage_batch and made == 5
                kinds += ["stage"] * staged_alone + ["path"] * 3 + ["apply"]
                if stage_batch:  # a stage run of its own exactly where no cycle prefetched the batch
                    assert staged_alone == (cycle in (0, 3)), cycle
    assert len(kinds) == len(sess.signatures)
    by_kind = {kind: {s for s, k in zip(sess.signatures, kinds) if k == kind} for kind in set(kinds)}
    assert all(len(signatures) == 1 for signatures in by_kind.values()), by_kind
    assert len(set(sess.signatures)) == (3 if stage_batch else 2)
    if stage_batch:  # only the first path run of a cycle with a next batch feeds one; the others feed a few bytes
        batch_bytes = batches[0].img0.nbytes + batches[0].img1.nbytes + batches[0].flow.nbytes
        path_bytes = [fed // batch_bytes for fed, kind in zip(sess.bytes_fed, kinds) if kind == "path"]
        assert path_bytes == [1, 0, 0] * 2 + [0, 0, 0] + [1, 0, 0] + [0, 0, 0]


def test_every_forward_run_of_an_evaluation_is_one_signature(random_batches):
    """BN recalibration, EPE and predicted flow fetch the same tensors with the same feeds (one Grappler pass)."""
    import tensorflow as tf

    from edgeflownas.model.bn_modes import BN_INFER
    from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE
    from edgeflownas.train.evaluate import PoolEvaluator
    from edgeflownas.train.graph import EvalGraph

    cfg = resolve(None, {"data.input_height": HEIGHT, "data.input_width": WIDTH, "model.init_neurons": 8}).config
    recal, val = random_batches(2, BATCH, HEIGHT, WIDTH, 2), random_batches(2, BATCH, HEIGHT, WIDTH, 3)
    other = (1, 2, 0, 1, 2, 0, 1, 2, 0)
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(SEED)
        graph = EvalGraph(cfg.model, cfg.loss, (HEIGHT, WIDTH))
        with tf.compat.v1.Session() as raw:
            raw.run(graph.init_op)
            sess = SignatureLog(raw)
            flows = []
            evaluator = PoolEvaluator(graph, recal, val, lambda line: None)
            epe = evaluator.evaluate(sess, [EDGEFLOWNET_BASELINE, other]).epe
            again = evaluator.evaluate_subnet(sess, other, graph.bn_snapshot(raw),
                                              lambda batch, flow: flows.append(flow))
            predicted = evaluator.predict(sess, [other], val[1])[0]
            # The flows handed over by the EPE runs are the subnet's: a run of its own gives the same bits.
            alone = raw.run(graph.net.flow, graph.feed(val[1], other, BN_INFER))
    forward = [s for s in sess.signatures if "img0:0" in s[1]]
    fetched = {s[0] for s in forward}
    assert fetched == {tuple(sorted(t.name for t in graph.eval_fetches))}
    assert len(set(forward)) == 1
    # per subnet: 2 recalibration + 2 validation runs; then predict: 2 recalibration + 1 prediction
    assert len(forward) == 4 * 3 + 3
    assert len(flows) == 2 and np.array_equal(flows[1], predicted) and np.array_equal(predicted, alone)
    assert len(epe) == 2 and again == epe[1]
