"""The stand-alone quality of a subnet (the study's reference), without selection on the scoring split.

A retrain's figure is the **mean val EPE of its last ``epochs`` evaluated epochs**:
no best-epoch pick on the val pairs the supernet is scored on (picking the
lowest of many noisy per-epoch EPEs biases towards lucky runs), and averaging
damps the epoch-to-epoch swing of a constant-lr run.  A subnet's reference is
the **median over its seeds** (one bad seed cannot move it far).

A retrain whose figure is above ``STUCK_RATIO`` x the zero-flow EPE of the same
val pairs never left the mean flow: it is counted and reported (``stuck``), not
hidden -- it still enters the median, which is what a median is for.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, Mapping, Optional, Sequence

STUCK_RATIO = 0.95
LAST_EPOCHS = 3


def last_epochs_mean(epes: Sequence[Optional[float]], epochs: int = LAST_EPOCHS) -> float:
    """Mean of the last ``epochs`` evaluated EPEs (None = epoch without evaluation, skipped)."""
    evaluated = [float(value) for value in epes if value is not None]
    if not evaluated:
        raise ValueError("no evaluated epoch")
    tail = evaluated[-epochs:]
    return sum(tail) / len(tail)


def retrain_figure(epes: Sequence[Optional[float]], zero_flow_epe: Optional[float],
                   epochs: int = LAST_EPOCHS) -> Dict[str, Any]:
    """One retrain's reference figure, how many epochs it averages, and whether it is stuck at the mean flow."""
    epe = last_epochs_mean(epes, epochs)
    evaluated = [value for value in epes if value is not None]
    stuck = None if not zero_flow_epe else epe > STUCK_RATIO * float(zero_flow_epe)
    return {"epe": epe, "epochs_averaged": min(epochs, len(evaluated)), "last": float(evaluated[-1]),
            "zero_flow_epe": zero_flow_epe, "stuck": stuck}


def subnet_reference(runs: Mapping[Any, Mapping[str, Any]]) -> float:
    """Median over a subnet's seeds of their retrain figures."""
    if not runs:
        raise ValueError("a subnet without retrains has no reference")
    return float(statistics.median(float(run["epe"]) for run in runs.values()))
