"""Training progress: the epoch bar (loss, lr, whole-run ETA) and the step log line at ``train.log_every_steps``.

The bar is tqdm's on stderr, shown on a terminal only; log lines are printed
above it (``start.RunLog``).  Every ``log_every`` applied steps of an epoch
one line gives the epoch position, the running loss average and lr, then the
speed since the previous line (s/step, samples/s) and the ETA of the whole
invocation.  Step speed leaves out evaluation; the ETA does not, since it is
the wall time per step so far (evaluations included) times the steps left.
The same figures go to ``scalars`` (TensorBoard's ``train_step/*``) at that
interval, with or without the line.  TensorFlow-free.
"""

from __future__ import annotations

import re
import time
from typing import Callable, Dict, Iterable, Optional

from tqdm import tqdm

from edgeflownas.progress import duration
from edgeflownas.train.plan import TrainPlan
from edgeflownas.train.state import EpochStats


# The step line's position and running loss, as ``TrainProgress.advance`` logs it (train.log).
STEP_LINE = re.compile(r" global_step=(\d+) loss_avg=([0-9.eE+-]+|nan|inf) ")


def step_losses(lines: Iterable[str]) -> Dict[int, float]:
    """{global step: running epoch-average loss} of the step lines among ``lines`` (a resumed run's repeated
    steps: the last line wins)."""
    found = {}
    for line in lines:
        match = STEP_LINE.search(line)
        if match:
            found[int(match.group(1))] = float(match.group(2))
    return dict(sorted(found.items()))


class TrainProgress:
    """The bar of each epoch and the interval step line; ``last_step`` is where this invocation stops."""

    def __init__(self, plan: TrainPlan, log: Callable[[str], None], log_every: int, step_lines: bool = True,
                 scalars: Optional[Callable[[int, Dict[str, float]], None]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plan, self.log, self.log_every, self.step_lines = plan, log, max(1, int(log_every)), step_lines
        self.scalars, self.clock = scalars, clock
        self.last_step = plan.planned_steps
        self._start: Optional[tuple] = None  # (time, global_step) of the first step of this invocation
        self._mark: Optional[tuple] = None  # (time, global_step) since which the step speed is measured
        self._logged: Optional[tuple] = None  # (epoch, applied steps) of the last step line

    def epoch_bar(self, epoch: int, start: int) -> tqdm:
        """The bar of 1-based ``epoch`` from batch ``start`` (disabled off a terminal)."""
        return tqdm(total=self.plan.steps_per_epoch, initial=start, desc=f"epoch {epoch}", unit="step",
                    leave=False, disable=None, dynamic_ncols=True)

    def begin(self, global_step: int) -> None:
        """Steps are about to run from ``global_step`` (an epoch starts): speed is measured from here."""
        now = self.clock()
        if self._start is None:
            self._start = (now, global_step)
        self._mark = (now, global_step)

    def eta(self, global_step: int) -> Optional[float]:
        """Seconds left until ``last_step`` at the wall time per step so far (None before the first step)."""
        if self._start is None or global_step <= self._start[1]:
            return None
        started, first = self._start
        return (self.clock() - started) / (global_step - first) * max(0, self.last_step - global_step)

    def advance(self, bar: tqdm, epoch: int, stats: EpochStats, global_step: int) -> None:
        """After one step: the bar shows loss, lr and the run's ETA; the step line every ``log_every`` steps."""
        if self._mark is None:
            self.begin(global_step - 1)
        averages = stats.averages()
        eta = self.eta(global_step)
        run_eta = "-" if eta is None else duration(eta)
        bar.set_postfix_str(f"loss={averages['train_loss_epoch_avg']:.4f} lr={stats.lr:.2e} run ETA {run_eta}",
                            refresh=False)
        bar.update(1)
        if stats.steps % self.log_every or self._logged == (epoch, stats.steps):
            return
        self._logged = (epoch, stats.steps)
        now = self.clock()
        since, from_step = self._mark
        steps = global_step - from_step
        figures = {"loss_avg": averages["train_loss_epoch_avg"], "lr": stats.lr}
        speed = ""
        if steps > 0 and now > since:
            per_step = (now - since) / steps
            figures.update(s_per_step=per_step, samples_per_s=self.plan.batch_size / per_step)
            speed = f" {per_step:.3f} s/step {self.plan.batch_size / per_step:.1f} samples/s"
        self._mark = (now, global_step)
        if self.scalars is not None:
            self.scalars(global_step, figures)
        if not self.step_lines:
            return
        self.log(f"epoch {epoch} step {stats.steps}/{self.plan.steps_per_epoch} global_step={global_step} "
                 f"loss_avg={averages['train_loss_epoch_avg']:.5f} lr={stats.lr:.3e}{speed} ETA {run_eta}")
