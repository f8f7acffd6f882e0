"""The epoch loop: fairness cycles, per-epoch evaluation, early stop, checkpoints, artifacts.

One optimizer step = one fairness cycle (``cycle_index == global_step``): the
batch is on the device (copied while the previous cycle ran), the 3 paths of
``cycle_paths(seed, global_step)`` run serially on it, the first of them
copying the next batch, then one apply (``TrainGraph.run_cycle``).
Epoch ``e`` (1-based) reads the loader's order for index ``e - 1``, a pure
function of (seed, epoch).  After each epoch: evaluate the
pool (every ``eval.every_n_epochs``), update early stop, save ``best`` (the
epoch early stop counts as an improvement: below best - min_delta) and ``last``
with a ``state.json`` holding every counter,
then rewrite the CSV history, the fairness counts and TensorBoard scalars.

A stop request (``interrupt.StopRequest``: SIGTERM, SLURM's USR2 warning,
Ctrl-C) is honoured at the next step boundary: ``last`` is saved with the
position inside the epoch (``next_batch_index``) and the partial epoch sums,
so the resumed run continues with the very next batch and logs the same
epoch averages as an uninterrupted one.

Divergence (``train.nonfinite``): the graph applies a cycle only if every
path's loss, the pre-clip norm and the BN statistics are finite (``graph``
module doc).  A cycle it refused ends the run under ``stop`` with one
``DivergenceError`` line (step, epoch, paths, values, last good checkpoint);
nothing is saved after it, so ``last`` and ``best`` keep the last finite
state.  Under ``skip`` the cycle counts as a step (``global_step``, the
sampler cycle, the data position and the fairness counts advance, so a resumed
run stays a function of the step) but changes no weight, Adam slot or BN
statistic; skips are logged and counted (``skipped_steps`` in the history CSV
per epoch and in state.json in total), and more than
``train.max_skipped_steps`` of them stop the run the same way.  No checkpoint
is ever written while a variable is non-finite.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from edgeflownas.data.flow_stats import zero_flow_epe
from edgeflownas.errors import DivergenceError
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, ArchCode, arch_name
from edgeflownas.nas.fair_sampler import add_counts, cycle_paths, fairness_gap
from edgeflownas.train import checkpoint, run_dir as rd
from edgeflownas.train.divergence import NonfinitePolicy, nonfinite_variables_message, refusal
from edgeflownas.train.early_stop import EarlyStopper
from edgeflownas.train.evaluate import PoolEvaluator, PoolResult
from edgeflownas.train.graph import TrainGraph
from edgeflownas.train.interrupt import StopRequest
from edgeflownas.train.progress import TrainProgress
from edgeflownas.train.state import EpochSettings, EpochStats, TrainState
from edgeflownas.train.tensorboard import flow_image_summary, flow_panel, scalar_summary, step_scalar_summary


@dataclass(frozen=True)
class SessionParts:
    """The live objects the epoch loop drives: session, graph, batch loader, pool evaluator, TensorBoard writer."""

    sess: Any
    graph: TrainGraph
    loader: Any
    evaluator: PoolEvaluator
    writer: Any


class Trainer:
    """Runs epochs on an initialised session; see the module doc for the order of things."""

    def __init__(self, settings: EpochSettings, parts: SessionParts, stopper: EarlyStopper, state: TrainState,
                 stop: Optional[StopRequest] = None, nonfinite: NonfinitePolicy = NonfinitePolicy("stop", 0)) -> None:
        self.settings, self.stopper, self.state = settings, stopper, state
        self.stop = stop or StopRequest()
        self.nonfinite = nonfinite
        # Flat names for what every step reads.
        self.sess, self.graph, self.loader = parts.sess, parts.graph, parts.loader
        self.evaluator, self.writer = parts.evaluator, parts.writer
        self.plan, self.pool, self.run_dir = settings.plan, tuple(settings.pool), Path(settings.run_dir)
        self.seed, self.fixed_arch, self.header = settings.seed, settings.fixed_arch, settings.header
        self.debug_trace, self.log_every, self.log = settings.debug_trace, settings.log_every, settings.log
        self._zero_flow: Optional[float] = None
        self.progress = TrainProgress(self.plan, self.log, self.log_every, not self.debug_trace, lambda step, figures:
                                      self.writer.add_summary(step_scalar_summary(figures), step))

    def paths(self, cycle_index: int) -> Sequence[ArchCode]:
        """The arch codes of one optimizer step."""
        return (self.fixed_arch,) if self.fixed_arch is not None else cycle_paths(self.seed, cycle_index)

    def step(self, batch, next_batch, epoch: int, batch_index: int, stats: EpochStats) -> None:
        """One fairness cycle on ``batch`` (staging ``next_batch`` meanwhile): one clipped Adam step."""
        cycle = self.state.global_step
        paths = self.paths(cycle)
        losses, applied, before, after, lr, step = self.graph.run_cycle(self.sess, batch, paths, next_batch)
        if step != cycle + 1:
            raise RuntimeError(f"global_step went from {cycle} to {step} in one cycle")
        self.state.global_step = step
        add_counts(self.state.counts, paths)
        if not applied:
            self.refused_cycle(f"epoch {epoch}, batch {batch_index + 1}/{self.plan.steps_per_epoch}, global_step "
                               f"{cycle}: {refusal(paths, losses, before)}", stats)
            return
        stats.add(float(np.mean(losses)), before, after, lr)
        if self.debug_trace:
            self.log(f"[trace] epoch={epoch} batch={batch_index} cycle={cycle} global_step={step} "
                     f"forward/backward x{len(paths)} paths={','.join(arch_name(c) for c in paths)} "
                     f"losses={','.join(f'{v:.5f}' for v in losses)} optimizer_step x1 "
                     f"global_grad_norm_before={before:.6f} global_grad_norm_after={after:.6f} lr={lr:.6e}")

    def refused_cycle(self, what: str, stats: EpochStats) -> None:
        """A cycle the graph did not apply: counted as skipped, or DivergenceError (policy ``stop``, or too many)."""
        stats.skipped += 1
        self.state.skipped_steps += 1
        self.log(self.nonfinite.check(what, self.state.skipped_steps, self.run_dir))

    def check_finite(self, where: str) -> None:
        """DivergenceError if any savable variable holds a NaN or Inf (nothing is saved then)."""
        bad = self.graph.nonfinite_variables(self.sess)
        if bad:
            raise DivergenceError(nonfinite_variables_message(bad, where, self.run_dir))

    def train_epoch(self, epoch: int) -> Optional[EpochStats]:
        """All optimizer steps of 1-based ``epoch`` from the saved position; None if a stop request cut it short."""
        start = self.state.next_batch_index
        stats = EpochStats.from_dict(self.state.partial_epoch) if start else EpochStats()
        batches = self.loader.batches(epoch - 1, start_batch=start)
        bar = self.progress.epoch_bar(epoch, start)
        self.progress.begin(self.state.global_step)
        try:
            upcoming = next(batches) if start < self.plan.steps_per_epoch else None
            for batch_index in range(start, self.plan.steps_per_epoch):
                # The next batch is taken one cycle early, so the cycle can copy it to the device while it runs;
                # only trained batches count (next_batch_index), so a stop here resumes with the right one.
                batch, upcoming = upcoming, (next(batches) if batch_index + 1 < self.plan.steps_per_epoch else None)
                self.step(batch, upcoming, epoch, batch_index, stats)
                self.progress.advance(bar, epoch, stats, self.state.global_step)  # bar, step line, step scalars
                if self.stop.requested and batch_index + 1 < self.plan.steps_per_epoch:
                    self.save_position(epoch, batch_index + 1, stats)
                    return None
        finally:
            bar.close()
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        # An applied step can still overflow a weight; catch it before the evaluation reads it.
        self.check_finite(f"after the last step of epoch {epoch} (global_step {self.state.global_step})")
        return stats

    def save_position(self, epoch: int, next_batch_index: int, stats: EpochStats) -> None:
        """Save ``last`` inside ``epoch``: the next batch to train and the epoch's running sums."""
        state = self.state
        state.next_batch_index, state.partial_epoch = next_batch_index, stats.to_dict()
        self.save_checkpoints(best=False)
        self.write_artifacts()
        self.log(f"stop requested ({self.stop.name}): saved {self.run_dir / rd.LAST} inside epoch {epoch} "
                 f"(next batch {next_batch_index}/{self.plan.steps_per_epoch}, global_step={state.global_step}); "
                 "resume continues from there")

    def save_checkpoints(self, best: bool) -> None:
        """Atomically write ``last`` (and ``best`` when asked) from the current session and state."""
        self.check_finite(f"at global_step {self.state.global_step}, before saving")
        payload = self.state.to_dict(self.stopper, self.header)
        kinds = ("best", "last") if best else ("last",)
        for kind in kinds:
            target = self.run_dir / (rd.BEST if kind == "best" else rd.LAST)
            checkpoint.save_checkpoint(target, lambda p: self.graph.save(self.sess, p), dict(payload, kind=kind))

    @property
    def zero_flow(self) -> float:
        """The EPE of predicting zero flow on the evaluator's validation batches (computed once)."""
        if self._zero_flow is None:
            self._zero_flow = zero_flow_epe(batch.flow for batch in self.evaluator.val_batches)
        return self._zero_flow

    def end_epoch(self, epoch: int, stats: EpochStats) -> bool:
        """Evaluate, decide early stop, save checkpoints and artifacts; True means stop."""
        state = self.state
        row: Dict[str, Any] = {"epoch": epoch, "global_step": state.global_step, **stats.averages()}
        if self.fixed_arch is None:  # a fixed-arch run trains one path: no fairness to measure
            row["fairness_gap"] = fairness_gap(state.counts)
        stop = improved_best = False
        if epoch % self.plan.eval_every == 0:
            started = time.time()
            result = self.evaluator.evaluate(self.sess, self.pool)
            row[rd.mean_column(len(self.pool))] = result.mean  # a fixed-arch run: its subnet's EPE
            if self.fixed_arch is None:
                row[rd.std_column(len(self.pool))] = result.std
            row[rd.ZERO_FLOW] = self.zero_flow
            row.update({f"epe_{name}": value for name, value in result.by_name().items()})
            decision = self.stopper.update(epoch, result.mean)
            stop = decision.stop
            # One notion of best (early_stop module doc): below best - min_delta, as early stop counts it.
            improved_best = decision.improved
            if improved_best:
                state.best_metric, state.best_epoch = self.stopper.state.best, epoch
            row["new_best"] = int(improved_best)
            if self.evaluator.picture_batch is not None:
                self.write_flow_pictures(result)
            if self.fixed_arch is None:
                what = (f"{rd.mean_column(len(self.pool))}={result.mean:.6f} {rd.std_column(len(self.pool))}="
                        f"{result.std:.6f}")
                fairness = f" fairness_gap={row['fairness_gap']}"
            else:
                what, fairness = f"fixed arch {arch_name(self.fixed_arch)} val EPE={result.mean:.6f}", ""
            self.log(f"epoch {epoch} eval {what} (zero-flow EPE {self.zero_flow:.6f}, "
                     f"ratio {result.mean / self.zero_flow:.3f}){fairness} "
                     f"early_stop_bad_epochs={self.stopper.state.bad_epochs}/{self.stopper.cfg.patience} "
                     f"({time.time() - started:.1f}s)")
        state.epoch, state.next_batch_index, state.partial_epoch = epoch, 0, None
        state.history = [r for r in state.history if r["epoch"] < epoch] + [_plain(row)]
        self.save_checkpoints(best=improved_best)
        self.write_artifacts()
        self.write_scalars(row)
        self.log(f"epoch {epoch} done global_step={state.global_step} "
                 f"train_loss_epoch_avg={row['train_loss_epoch_avg']:.5f} "
                 f"grad_norm_epoch_avg before/after clip={row['train_grad_norm_before_clip_epoch_avg']:.4f}/"
                 f"{row['train_grad_norm_after_clip_epoch_avg']:.4f} lr={row['lr']:.3e}"
                 + (" (new best)" if improved_best else ""))
        return stop

    def write_artifacts(self) -> None:
        """Rewrite the history CSV and the fairness counts from the state."""
        rd.write_history(self.run_dir, self.pool, self.state.history)
        rd.write_fairness(self.run_dir, self.state.counts, self.state.global_step, self.seed)

    def write_flow_pictures(self, result: PoolResult) -> None:
        """TensorBoard images of the fixed picture samples: EdgeFlowNet baseline and the best pool subnet."""
        best = self.pool[int(np.argmin(result.epe))]
        if self.settings.fixed_arch is not None:
            subnets = {"best": best}  # a retrain's own subnet: the same tag as a supernet's best pool subnet
        else:
            subnets = {"baseline": EDGEFLOWNET_BASELINE, "best": best}
        batch = self.evaluator.picture_batch
        flows = self.evaluator.predict(self.sess, list(subnets.values()), batch)
        epes = result.by_name()
        for (label, code), flow in zip(subnets.items(), flows):
            panels = [flow_panel(batch.img0[i], batch.flow[i], flow[i]) for i in range(len(flow))]
            name = arch_name(code)  # the caption says which subnet (the best pool one changes between epochs)
            who = "baseline" if label == "baseline" else "subnet" if self.settings.fixed_arch is not None else "best pool"
            caption = f"{who} {name}" + (f" EPE {epes[name]:.3f}" if name in epes else "")
            self.writer.add_summary(flow_image_summary(f"flow/{label}", panels, caption), self.state.global_step)

    def write_scalars(self, row: Dict[str, Any]) -> None:
        """TensorBoard scalars of one epoch row, at its global step."""
        evaluated = rd.mean_column(len(self.pool)) in row
        best = self.state.best_metric if evaluated else None
        self.writer.add_summary(scalar_summary(row, best), row["global_step"])
        self.writer.flush()

    def run(self, last_epoch: int) -> str:
        """Train epochs ``state.epoch + 1 .. last_epoch``; 'done', 'early_stop' or 'interrupted'."""
        self.progress.last_step = last_epoch * self.plan.steps_per_epoch  # the whole-run ETA counts to here
        for epoch in range(self.state.epoch + 1, last_epoch + 1):
            started = time.time()
            stats = self.train_epoch(epoch)
            if stats is None:
                return "interrupted"
            self.log(f"epoch {epoch} trained {stats.steps} steps in {time.time() - started:.1f}s")
            if self.end_epoch(epoch, stats):
                self.log(f"early stop after epoch {epoch}: no improvement below best - min_delta "
                         f"for {self.stopper.cfg.patience} evaluations (best {self.stopper.state.best:.6f} "
                         f"at epoch {self.stopper.state.best_epoch})")
                return "early_stop"
            if self.stop.requested and epoch < last_epoch:
                self.log(f"stop requested ({self.stop.name}): {self.run_dir / rd.LAST} holds epoch {epoch}; "
                         "resume continues with the next epoch")
                return "interrupted"
        return "done"


def _plain(row: Dict[str, Any]) -> Dict[str, Any]:
    return {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in row.items()}
