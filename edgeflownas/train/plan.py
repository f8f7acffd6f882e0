"""The numbers a run is planned with, derived once from the config and the data sizes.

Steps per epoch: ``train.steps_per_epoch`` or one pass over the training split
(``floor(train_samples / batch_size)``); ``fast_mode.steps_per_epoch`` in fast
mode; capped by ``train.max_steps`` and by the batches one pass can supply.
The cosine schedule spans ``num_epochs x steps_per_epoch`` optimizer steps; a
``train.lr_warmup_steps`` longer than that is a ConfigError (a warm-up that
never ends), except in fast mode, whose few steps are a smoke run of the same
config: there it is a notice and the warm-up runs unfinished.
Evaluation uses ``eval.batch_size`` (default ``train.batch_size``) and the
first ``eval.val_batches`` batches of the sorted validation split (default
all of it); fast mode substitutes ``fast_mode.eval_batch_size`` and
``fast_mode.val_batches``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from edgeflownas.config_types import Config
from edgeflownas.errors import CheckpointError, ConfigError, DataError
from edgeflownas.nas.arch_codec import ArchCode
from edgeflownas.nas.fair_sampler import PATHS_PER_CYCLE


@dataclass(frozen=True)
class TrainPlan:
    """Resolved sizes and counts of one run."""

    batch_size: int
    steps_per_epoch: int
    num_epochs: int
    planned_steps: int
    paths_per_step: int
    eval_batch_size: int
    val_batches: int
    val_samples_used: int
    recal_batches: int
    pool_size: int
    eval_every: int
    notices: tuple

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready copy."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @property
    def eval(self) -> Dict[str, int]:
        """The evaluation part, as recorded in the manifest."""
        return {"pool_size": self.pool_size, "bn_recal_batches": self.recal_batches,
                "eval_batch_size": self.eval_batch_size, "val_batches": self.val_batches,
                "val_samples_used": self.val_samples_used, "every_n_epochs": self.eval_every}


def fixed_arch_of(cfg: Config) -> Optional[ArchCode]:
    """The one code a fixed-arch run (a retrain) trains, or None for a supernet."""
    return tuple(cfg.model.fixed_arch_code) if cfg.train.supernet_mode == "fixed_arch" else None


def make_plan(cfg: Config, train_samples: int, val_samples: int) -> TrainPlan:
    """Derive the plan; DataError if the data cannot fill one batch."""
    train, fast = cfg.train, cfg.fast_mode
    notices: List[str] = []
    batch = train.batch_size
    full_pass = train_samples // batch
    if full_pass < 1:
        raise DataError(
            f"training split {cfg.data.train_dir} has {train_samples} samples, fewer than one batch of "
            f"train.batch_size={batch}: lower --batch_size or add data"
        )
    steps = fast.steps_per_epoch if cfg.runtime.fast_mode else (train.steps_per_epoch or full_pass)
    if train.max_steps is not None and train.max_steps < steps:
        steps = train.max_steps
    if steps > full_pass:
        notices.append(f"steps_per_epoch {steps} exceeds one pass over {train_samples} training samples "
                       f"at batch {batch}; using {full_pass}")
        steps = full_pass
    planned = train.num_epochs * steps
    if train.lr_warmup_steps > planned:
        what = (f"train.lr_warmup_steps={train.lr_warmup_steps} exceeds the {planned} planned optimizer steps "
                f"(num_epochs {train.num_epochs} x steps_per_epoch {steps})")
        if not cfg.runtime.fast_mode:
            raise ConfigError(f"{what}: the warm-up would never end; set train.lr_warmup_steps to at most "
                              f"{planned}, or plan more steps")
        notices.append(f"{what} in fast mode; the warm-up does not finish in this run")
    eval_batch = fast.eval_batch_size if cfg.runtime.fast_mode else (cfg.eval.batch_size or batch)
    available_val = math.ceil(val_samples / eval_batch)
    wanted_val = fast.val_batches if cfg.runtime.fast_mode else cfg.eval.val_batches
    val_batches = min(wanted_val, available_val) if wanted_val else available_val
    if wanted_val and wanted_val > available_val:
        notices.append(f"{wanted_val} validation batches requested, the split supplies {available_val}")
    return TrainPlan(
        batch_size=batch,
        steps_per_epoch=steps,
        num_epochs=train.num_epochs,
        planned_steps=planned,
        paths_per_step=PATHS_PER_CYCLE if train.supernet_mode == "strict_fairness" else 1,
        eval_batch_size=eval_batch,
        val_batches=val_batches,
        val_samples_used=min(val_samples, val_batches * eval_batch),
        # A fixed-arch run evaluates its own subnet with its own BN statistics: no pool, no recalibration.
        recal_batches=0 if fixed_arch_of(cfg) else cfg.eval.bn_recal_batches,
        pool_size=1 if fixed_arch_of(cfg) else cfg.eval.pool_size,
        eval_every=cfg.eval.every_n_epochs,
        notices=tuple(notices),
    )


def plan_from_state(state: Dict[str, Any], where: Path) -> TrainPlan:
    """The TrainPlan a checkpoint (``where``, holding ``state``) was trained and evaluated with."""
    doc = state.get("plan")
    if not isinstance(doc, dict):
        raise CheckpointError(f"{Path(where) / 'state.json'} has no 'plan': written by an older efnas")
    return TrainPlan(**dict(doc, notices=tuple(doc.get("notices", ()))))
