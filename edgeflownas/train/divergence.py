"""What a non-finite training step becomes: the ``train.nonfinite`` policy and its one-line messages.

TensorFlow-free.  The graph (``graph.py``) decides whether a cycle is finite
and refuses to apply it if not; the trainer asks this module what to say and
whether to go on.  Values that went NaN or Inf are named per path (losses) or
per cycle (the pre-clip norm of the accumulated gradient, the BN statistics),
with the last checkpoint that still holds finite numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeflownas.config_types import TrainConfig
from edgeflownas.errors import CheckpointError, DivergenceError
from edgeflownas.nas.arch_codec import ArchCode
from edgeflownas.train import checkpoint, run_dir as rd


@dataclass(frozen=True)
class NonfinitePolicy:
    """What a cycle the graph refused to apply does: ``stop``, or ``skip`` up to ``max_skipped`` times."""

    mode: str
    max_skipped: int

    @classmethod
    def from_config(cls, train: TrainConfig) -> "NonfinitePolicy":
        """``train.nonfinite`` and ``train.max_skipped_steps``."""
        return cls(train.nonfinite, train.max_skipped_steps)

    def check(self, what: str, skipped_total: int, run_dir: Path) -> str:
        """DivergenceError under ``stop`` or past the limit; else the log line of skip number ``skipped_total``."""
        if self.mode == "stop":
            raise DivergenceError(f"training diverged at {what}; the update was not applied and nothing was saved "
                                  f"after it; {last_good(run_dir)}. {remedy(run_dir)}")
        if skipped_total > self.max_skipped:
            raise DivergenceError(f"training diverged: {skipped_total} skipped steps exceed train.max_skipped_steps="
                                  f"{self.max_skipped} (last at {what}); nothing was saved after it; "
                                  f"{last_good(run_dir)}. {remedy(run_dir)}")
        return f"skipped step {skipped_total} of at most {self.max_skipped}: {what}; update not applied"


def _code(code: ArchCode) -> str:
    return ",".join(map(str, code))


def refusal(paths: Sequence[ArchCode], losses: Sequence[float], norm_before: float) -> str:
    """Which values of a refused cycle were non-finite: per-path losses, the norm, else the BN statistics."""
    bad = [f"path {_code(code)} loss={loss:.4g}" for code, loss in zip(paths, losses) if not np.isfinite(loss)]
    if not np.isfinite(norm_before):
        bad.append(f"pre-clip grad norm={norm_before:.4g} over paths {' '.join(map(_code, paths))}")
    if not bad:
        bad.append(f"a BN moving statistic became non-finite in paths {' '.join(map(_code, paths))}")
    finite = [f"{loss:.4g}" for loss in losses if np.isfinite(loss)]
    if finite and len(finite) < len(losses):
        bad.append(f"finite path losses {', '.join(finite)}")
    return "; ".join(bad)


def nonfinite_variables_message(names: Sequence[str], where: str, run_dir: Path) -> str:
    """The DivergenceError text for variables that hold NaN/Inf ``where``."""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (f"training diverged: {len(names)} variable(s) hold NaN/Inf {where} ({shown}); nothing was saved; "
            f"{last_good(run_dir)}. {remedy(run_dir)}")


def last_good(run_dir: Path) -> str:
    """Where the last finite state is (the run's ``last`` checkpoint), for a divergence message."""
    last = Path(run_dir) / rd.LAST
    if not checkpoint.has_checkpoint(last):
        return f"no checkpoint was written yet ({last} does not exist)"
    try:
        doc = checkpoint.read_state(last)
    except CheckpointError as error:
        return f"{last} exists but cannot be read ({error})"
    return f"last good checkpoint: {last} (epoch {doc['epoch']}, global_step {doc['global_step']})"


def remedy(run_dir: Path) -> str:
    """What the user can do after a divergence (train.lr and the loss are fixed for a --resume)."""
    name = Path(run_dir).name
    if not checkpoint.has_checkpoint(Path(run_dir) / rd.LAST):
        return "Fix: start again with a lower train.lr (and loss.uncertainty_form: safe)"
    return ("Fix: --resume with train.nonfinite: skip steps over bad batches; for a lower train.lr or another "
            f"loss.uncertainty_form start --experiment_name NEW --resume_experiment_name {name} (its weights), "
            "or start afresh")
