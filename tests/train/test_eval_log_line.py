"""The evaluator's per-subnet log line: EPE always, BN before/after summaries only with debug_trace (no TensorFlow)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, arch_name
from edgeflownas.train.evaluate import PoolEvaluator


class FakeGraph:
    """What PoolEvaluator calls on an EvalGraph; the session below answers its fetches."""

    def __init__(self):
        self.net = SimpleNamespace(bn_reset_recal_op="reset", bn_apply_recal_op="apply")
        self.eval_fetches = ("epe", "flow")
        self.snapshots = 0

    def bn_restore(self, sess, values):
        pass

    def bn_snapshot(self, sess):
        self.snapshots += 1
        return [np.full(4, 0.5), np.full(4, 2.0)]

    def feed(self, batch, code, mode):
        return {"batch": batch, "mode": mode}


class FakeSession:
    def run(self, fetch, feed=None):
        return (1.25, np.zeros((2, 4, 4, 2))) if fetch == ("epe", "flow") else None


def evaluate(debug_trace: bool):
    lines, graph = [], FakeGraph()
    batch = SimpleNamespace(img0=np.zeros((2, 4, 4, 3)))
    evaluator = PoolEvaluator(graph, [batch], [batch, batch], lines.append, debug_trace=debug_trace)
    result = evaluator.evaluate(FakeSession(), [EDGEFLOWNET_BASELINE])
    return lines, result, graph


@pytest.mark.parametrize("debug_trace", [False, True])
def test_one_line_per_subnet_with_its_epe_and_bn_summaries_only_with_debug_trace(debug_trace):
    lines, result, graph = evaluate(debug_trace)
    assert result.epe == [1.25]
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith(f"eval subnet={arch_name(EDGEFLOWNET_BASELINE)} bn_recal_batches=1")
    assert line.endswith("epe=1.250000")
    assert ("bn_before[" in line and "bn_after[" in line) is debug_trace
    # Without the trace the BN variables are read only to save and restore the training statistics.
    assert graph.snapshots == (2 if debug_trace else 1)
