"""The one evaluation of a subnet: BN recalibration, then EPE (docs/design.md §5); training, eval, search and export use it.

For each subnet of the pool: start from the training moving statistics, zero
the recalibration sums, run the **same**
``bn_recal_batches`` fixed training batches in BN_RECAL, set the moving
statistics to their true average, then measure EPE on the fixed validation
batches in BN_INFER.  The training moving statistics are saved before and put
back after the pool, so evaluation never perturbs training (and a resumed run
stays exact).  EPE is the mean over every pixel of the validation batches, in
training-resolution pixels; ``std`` is the population std over the pool.
Each subnet logs one line with its EPE; with ``debug_trace`` the line also
summarises the BN moving statistics before and after recalibration.
Which samples are read is ``train.eval_data``'s choice; the graph is any
``graph.EvalGraph`` (a ``TrainGraph`` is one).  TensorFlow-free at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from edgeflownas.model.bn_modes import BN_INFER, BN_RECAL
from edgeflownas.nas.arch_codec import ArchCode, arch_name

if TYPE_CHECKING:  # the graph module imports TensorFlow; the evaluator only calls the graph it is given
    from edgeflownas.train.graph import EvalGraph

@dataclass(frozen=True)
class PoolResult:
    """EPE per subnet (pool order) and its summary."""

    names: List[str]
    epe: List[float]

    @property
    def mean(self) -> float:
        """Mean EPE over the pool."""
        return float(np.mean(self.epe))

    @property
    def std(self) -> float:
        """Population standard deviation of EPE over the pool."""
        return float(np.std(self.epe))

    def by_name(self) -> Dict[str, float]:
        """{arch name: EPE}."""
        return dict(zip(self.names, self.epe))


def bn_summary(values: Sequence[np.ndarray]) -> str:
    """One-line summary of BN moving statistics: mean |moving_mean|, mean moving_variance."""
    means, variances = values[0::2], values[1::2]
    abs_mean = float(np.mean(np.concatenate([np.abs(m).ravel() for m in means])))
    mean_var = float(np.mean(np.concatenate([v.ravel() for v in variances])))
    return f"mean|mu|={abs_mean:.5g} mean_var={mean_var:.5g}"


class PoolEvaluator:
    """Holds the fixed recalibration and validation batches; evaluates a pool on demand."""

    def __init__(self, graph: "EvalGraph", recal_batches: Sequence, val_batches: Sequence,
                 log: Callable[[str], None], picture_batch=None, debug_trace: bool = False) -> None:
        self.graph = graph
        self.recal_batches = list(recal_batches)
        self.val_batches = list(val_batches)
        self.log = log
        self.picture_batch = picture_batch  # fixed validation samples drawn to TensorBoard (None: no pictures)
        self.debug_trace = debug_trace  # BN before/after summaries in the per-subnet line (runtime.debug_trace)

    def recalibrate(self, sess, code: ArchCode, training_stats: Sequence[np.ndarray]) -> None:
        """Reset BN to ``training_stats``, then re-estimate it for ``code`` as a true average."""
        graph = self.graph
        graph.bn_restore(sess, training_stats)
        sess.run(graph.net.bn_reset_recal_op)
        for batch in self.recal_batches:
            sess.run(graph.eval_fetches, graph.feed(batch, code, BN_RECAL))
        sess.run(graph.net.bn_apply_recal_op)

    def evaluate_subnet(self, sess, code: ArchCode, training_stats: Sequence[np.ndarray],
                        each_flow: Optional[Callable[[object, np.ndarray], None]] = None) -> float:
        """Recalibrate BN for ``code`` on the fixed training batches, then EPE on the validation batches.

        ``each_flow(batch, flow)``, when given, receives each validation batch's predicted flow from the run that
        measured its EPE (the per-pixel metrics of ``efnas eval`` need no second pass).
        """
        graph = self.graph
        self.recalibrate(sess, code, training_stats)
        # The summary reads every BN variable back: only when asked for.
        summary = (f" bn_before[{bn_summary(training_stats)}] bn_after[{bn_summary(graph.bn_snapshot(sess))}]"
                   if self.debug_trace else "")
        total, pixels = 0.0, 0
        for batch in self.val_batches:
            epe, flow = sess.run(graph.eval_fetches, graph.feed(batch, code, BN_INFER))
            if each_flow is not None:
                each_flow(batch, flow)
            count = len(batch.img0)
            total += float(epe) * count
            pixels += count
        value = total / pixels
        self.log(f"eval subnet={arch_name(code)} bn_recal_batches={len(self.recal_batches)}{summary} "
                 f"epe={value:.6f}")
        return value

    def predict(self, sess, codes: Sequence[ArchCode], batch) -> List[np.ndarray]:
        """Predicted flow of ``batch`` for each subnet, each with its own recalibrated BN; training BN restored."""
        saved = self.graph.bn_snapshot(sess)
        try:
            flows = []
            for code in codes:
                self.recalibrate(sess, code, saved)
                flows.append(sess.run(self.graph.eval_fetches, self.graph.feed(batch, code, BN_INFER))[1])
        finally:
            self.graph.bn_restore(sess, saved)
        return flows

    def evaluate(self, sess, pool: Sequence[ArchCode]) -> PoolResult:
        """EPE of every pool subnet; the training BN statistics are restored afterwards."""
        saved = self.graph.bn_snapshot(sess)
        try:
            epes = [self.evaluate_subnet(sess, code, saved)
                    for code in tqdm(pool, desc="eval pool", unit="subnet", leave=False, disable=None)]
        finally:
            self.graph.bn_restore(sess, saved)
        return PoolResult([arch_name(code) for code in pool], epes)
