"""Which samples evaluation reads (TensorFlow-free): BN-recalibration batches, validation batches, pictures.

The choice is a pure function of the seed and the plan, so training, ``efnas
eval``, search and export read exactly the same batches for a run.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from edgeflownas.train.plan import TrainPlan

# Separates the recalibration-batch choice from other consumers of the seed.
_RECAL_STREAM = 0xB4C1


def recal_indices(seed: int, train_samples: int, num_batches: int, batch_size: int) -> np.ndarray:
    """Training-sample indices [num_batches, batch_size] for BN recalibration (pure in seed)."""
    rng = np.random.default_rng([_RECAL_STREAM, int(seed)])
    needed = num_batches * batch_size
    if needed <= train_samples:
        flat = rng.choice(train_samples, size=needed, replace=False)
    else:
        flat = np.concatenate([rng.permutation(train_samples) for _ in range(-(-needed // train_samples))])[:needed]
    return flat.reshape(num_batches, batch_size)


def picture_indices(val_samples_used: int, count: int) -> List[int]:
    """``count`` fixed validation indices spread evenly over the evaluated validation samples."""
    if val_samples_used < 1 or count < 1:
        return []
    return sorted({int(i) for i in np.linspace(0, val_samples_used - 1, num=min(count, val_samples_used)).round()})


def val_indices(val_samples: int, num_batches: int, batch_size: int) -> List[np.ndarray]:
    """The first ``num_batches`` batches of the sorted validation split (the last may be short)."""
    stop = min(val_samples, num_batches * batch_size)
    return [np.arange(start, min(start + batch_size, stop)) for start in range(0, stop, batch_size)]


def eval_batches(train_source, val_source, plan: TrainPlan, seed: int) -> Tuple[list, list]:
    """The fixed BN-recalibration batches and validation batches, loaded once."""
    recal = [train_source.get_batch(row) for row in
             recal_indices(seed, len(train_source), plan.recal_batches, plan.eval_batch_size)]
    val = [val_source.get_batch(idx) for idx in val_indices(len(val_source), plan.val_batches, plan.eval_batch_size)]
    return recal, val


def picture_batch(val_source, plan: TrainPlan, count: int):
    """The fixed validation samples of the TensorBoard flow pictures (None when ``count`` is 0)."""
    indices = picture_indices(plan.val_samples_used, count)
    return val_source.get_batch(np.asarray(indices)) if indices else None
