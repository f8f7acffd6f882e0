"""The TensorFlow-free records of a training run: counters, epoch sums, what was set up, what it achieved.

Kept apart from the TensorFlow modules (``trainer``, ``session``) so ``api``
(which runs before TensorFlow is imported) and the resume logic can use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from edgeflownas.config import ResolvedConfig
from edgeflownas.nas.arch_codec import ArchCode
from edgeflownas.train.early_stop import EarlyStopper
from edgeflownas.train.plan import TrainPlan


@dataclass
class TrainState:
    """Every counter a resume needs; stored as state.json inside each checkpoint."""

    global_step: int
    epoch: int
    counts: np.ndarray
    history: List[Dict[str, Any]]
    best_metric: Optional[float]
    best_epoch: Optional[int]
    next_batch_index: int = 0
    partial_epoch: Optional[Dict[str, float]] = None
    skipped_steps: int = 0

    def to_dict(self, stopper: EarlyStopper, header: Dict[str, Any]) -> Dict[str, Any]:
        """JSON-ready state (``header`` carries config hash, seed, plan)."""
        return dict(header, global_step=self.global_step, epoch=self.epoch, cycle_index=self.global_step,
                    next_batch_index=self.next_batch_index, partial_epoch=self.partial_epoch,
                    skipped_steps=self.skipped_steps,
                    fairness_counts=self.counts.tolist(),
                    history=self.history, best_metric=self.best_metric, best_epoch=self.best_epoch,
                    early_stop=stopper.state.to_dict())


@dataclass
class EpochStats:
    """Sums over the steps of one epoch; the averages are the logged figures."""

    steps: int = 0
    loss: float = 0.0
    norm_before: float = 0.0
    norm_after: float = 0.0
    lr: float = float("nan")
    skipped: int = 0

    def add(self, loss: float, before: float, after: float, lr: float) -> None:
        """Add one optimizer step."""
        self.steps += 1
        self.loss += loss
        self.norm_before += before
        self.norm_after += after
        self.lr = lr

    def to_dict(self) -> Dict[str, float]:
        """The running sums, for a checkpoint saved inside an epoch."""
        return {"steps": self.steps, "loss": self.loss, "norm_before": self.norm_before,
                "norm_after": self.norm_after, "lr": self.lr, "skipped": self.skipped}

    @classmethod
    def from_dict(cls, sums: Optional[Dict[str, float]]) -> "EpochStats":
        """Sums saved by ``to_dict`` (a fresh epoch when None)."""
        return cls(**sums) if sums else cls()

    def averages(self) -> Dict[str, float]:
        """Epoch averages of loss and grad norms over the applied steps, the last lr and the skipped steps."""
        n = max(self.steps, 1)
        return {"train_loss_epoch_avg": self.loss / n, "train_grad_norm_before_clip_epoch_avg": self.norm_before / n,
                "train_grad_norm_after_clip_epoch_avg": self.norm_after / n, "lr": self.lr,
                "skipped_steps": self.skipped}


@dataclass(frozen=True)
class TrainResult:
    """What a training invocation achieved."""

    epochs_done: int
    global_step: int
    best_mean_epe: Optional[float]
    best_epoch: Optional[int]
    stopped_early: bool
    run_dir: Path
    history: List[Dict[str, Any]]
    interrupted_by: Optional[str] = None  # signal name when a stop request ended the run early


@dataclass(frozen=True)
class RunSetup:
    """What ``api.run_training`` decided before any TensorFlow: config, plan, run directory, pool, start."""

    resolved: ResolvedConfig
    plan: TrainPlan
    run_dir: Path
    pool: Sequence[ArchCode]
    mode: str  # fresh | resume | inherit
    source_ckpt: Optional[Path]  # the checkpoint read by a resume or inherit
    state_doc: Optional[Dict[str, Any]]  # its state.json (resume only)


@dataclass(frozen=True)
class OpenedData:
    """The checked train/val sources and what the manifest records about them."""

    train: Any
    val: Any
    info: Dict[str, Any]

    def close(self) -> None:
        """Close both sources."""
        self.train.close()
        self.val.close()


@dataclass(frozen=True)
class EpochSettings:
    """The fixed facts the epoch loop works with (``Trainer``); the live objects come separately."""

    plan: TrainPlan
    pool: Sequence[ArchCode]
    run_dir: Path
    seed: int
    fixed_arch: Optional[ArchCode]  # set in fixed_arch mode: every step trains this one path
    header: Dict[str, Any]  # experiment, seed, config, plan, data: copied into every state.json
    debug_trace: bool
    log_every: int
    log: Callable[[str], None]
