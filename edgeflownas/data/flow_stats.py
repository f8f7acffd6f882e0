"""Reference errors of trivial flow predictors, to read a trained EPE against.

A supernet whose subnets all score about the zero-flow EPE has learnt nothing
but the mean flow (studies/learnability/README.md).  These figures use the
evaluator's averaging (``edgeflownas.train.evaluate``): per sample the mean
over its pixels of the end-point error, then the mean over samples, so they
are comparable with ``mean_epe_12`` when computed on the same validation
batches.  TensorFlow-free: it takes the batches' flow arrays.
"""

from __future__ import annotations

from typing import Dict, Iterable, Sequence

import numpy as np

from edgeflownas.errors import DataError
from edgeflownas.flow_viz import endpoint_error


def _per_sample(flows: Iterable[np.ndarray], target: np.ndarray) -> np.ndarray:
    """Per-sample mean end-point error of predicting ``target`` (broadcast) for every [B,H,W,2] flow batch."""
    values = []
    for flow in flows:
        flow = np.asarray(flow, np.float64)
        if flow.ndim != 4 or flow.shape[-1] != 2:
            raise DataError(f"flow batches must be [B,H,W,2], got shape {flow.shape}")
        values.append(endpoint_error(flow, target).mean(axis=(1, 2)))
    if not values or sum(len(v) for v in values) == 0:
        raise DataError("no flow samples to measure: pass at least one non-empty [B,H,W,2] batch")
    return np.concatenate(values)


def zero_flow_epe(flows: Iterable[np.ndarray]) -> float:
    """EPE of predicting zero flow everywhere: the mean ground-truth flow magnitude, averaged as the evaluator does."""
    return float(_per_sample(flows, np.zeros(2)).mean())


def constant_flow_epe(flows: Iterable[np.ndarray], vector: Sequence[float]) -> float:
    """EPE of predicting one constant flow ``vector`` (u, v) everywhere (e.g. the training mean flow)."""
    return float(_per_sample(flows, np.asarray(vector, np.float64)).mean())


def flow_summary(flows: Iterable[np.ndarray]) -> Dict[str, float]:
    """Zero-flow EPE, mean flow vector and magnitude percentiles of the batches (one JSON-ready dict)."""
    batches = [np.asarray(flow, np.float64) for flow in flows]
    per_sample = _per_sample(batches, np.zeros(2))
    magnitude = np.concatenate([np.linalg.norm(flow, axis=-1).ravel() for flow in batches])
    mean = np.concatenate([flow.reshape(-1, 2) for flow in batches]).mean(axis=0)
    return {"zero_flow_epe": float(per_sample.mean()), "samples": int(per_sample.size),
            "mean_u": float(mean[0]), "mean_v": float(mean[1]),
            "mean_flow_epe": constant_flow_epe(batches, mean),
            "magnitude_p50": float(np.percentile(magnitude, 50)),
            "magnitude_p95": float(np.percentile(magnitude, 95)), "magnitude_max": float(magnitude.max())}
