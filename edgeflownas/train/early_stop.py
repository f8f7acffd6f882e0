"""Early stopping on ``mean_epe_12`` (lower is better), and the one definition of "best".

A value counts as an improvement only if it is below ``best - min_delta``
(the first evaluation always does).  That is also what "best" means
everywhere: the log's "(new best)", ``supernet_best``, the checkpoint's
``best_metric``/``best_epoch`` and the early-stop counters all follow
``Decision.improved``, so they can never name different epochs.
After ``patience`` evaluated epochs in a row without an improvement the run
stops, but never before ``min_epochs_before_early_stop`` epochs are done.

The state is a small dict stored in every checkpoint, so a resumed run keeps
counting where it stopped.  ``reset_early_stop_on_resume`` starts it afresh
once per request: the state records the ``request_key`` the reset was done
for, and a requeued SLURM job (same config, same flag) finds it there and
keeps counting instead of resetting again.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional

from edgeflownas.config_types import EarlyStopConfig


@dataclass
class EarlyStopState:
    """Counters of the early-stop rule; plain values so it serialises to JSON."""

    best: Optional[float] = None
    best_epoch: Optional[int] = None
    bad_epochs: int = 0
    stopped_epoch: Optional[int] = None
    reset_key: Optional[str] = None  # request_key of the reset these counters started from (None: no reset asked)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready copy of the state."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "EarlyStopState":
        """Rebuild a state written by ``to_dict``."""
        keys = ("best", "best_epoch", "bad_epochs", "stopped_epoch", "reset_key")
        return cls(**{k: data.get(k, getattr(cls(), k)) for k in keys})


def request_key(early_stop_values: Mapping[str, Any]) -> str:
    """What identifies one reset request: the early_stop settings it was made with.

    A requeue re-runs the same command with the same settings, so it maps to the
    same key; asking again under changed settings (e.g. a larger patience) is a
    new request.
    """
    text = json.dumps(dict(early_stop_values), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Decision:
    """What one epoch's metric meant: a new best, and whether to stop now."""

    improved: bool
    stop: bool
    threshold: Optional[float]


class EarlyStopper:
    """Applies the patience / min_delta / minimum-epochs rule to successive metrics."""

    def __init__(self, cfg: EarlyStopConfig, state: Optional[EarlyStopState] = None) -> None:
        self.cfg = cfg
        self.state = state or EarlyStopState()

    def threshold(self) -> Optional[float]:
        """A metric must be strictly below this to count as an improvement (None before the first)."""
        if self.state.best is None:
            return None
        return self.state.best - self.cfg.min_delta

    def update(self, epoch: int, metric: float) -> Decision:
        """Record the metric of 1-based ``epoch`` and decide whether to stop after it."""
        if not math.isfinite(metric):
            raise ValueError(f"early-stop metric at epoch {epoch} is not finite: {metric}")
        threshold = self.threshold()
        improved = threshold is None or metric < threshold
        if improved:
            self.state.best, self.state.best_epoch, self.state.bad_epochs = float(metric), epoch, 0
        else:
            self.state.bad_epochs += 1
        stop = self.state.bad_epochs >= self.cfg.patience and epoch >= self.cfg.min_epochs_before_early_stop
        if stop:
            self.state.stopped_epoch = epoch
        return Decision(improved, stop, threshold)

    def reset(self, key: Optional[str] = None) -> None:
        """Forget best and bad-epoch count (metrics from before are not comparable); remember the request ``key``."""
        self.state = EarlyStopState(reset_key=key)
