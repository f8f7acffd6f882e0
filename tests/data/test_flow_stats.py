"""Reference EPEs of trivial predictors, averaged as the pool evaluator averages."""

from __future__ import annotations

import numpy as np
import pytest

from edgeflownas.data.flow_stats import constant_flow_epe, flow_summary, zero_flow_epe
from edgeflownas.errors import DataError


def test_zero_and_constant_flow_epe_by_hand():
    # Sample 0: every pixel (3, 4) -> |flow| 5.  Sample 1 (second, short batch): (0, 0) -> 0.
    first = np.broadcast_to(np.array([3.0, 4.0], np.float32), (1, 2, 3, 2))
    second = np.zeros((1, 2, 3, 2), np.float32)
    assert zero_flow_epe([first, second]) == pytest.approx(2.5)
    assert constant_flow_epe([first, second], (3.0, 4.0)) == pytest.approx(2.5)
    summary = flow_summary([first, second])
    assert summary["samples"] == 2 and (summary["mean_u"], summary["mean_v"]) == pytest.approx((1.5, 2.0))
    assert summary["mean_flow_epe"] == pytest.approx(2.5) and summary["magnitude_max"] == pytest.approx(5.0)


def test_each_sample_weighs_the_same_whatever_its_batch():
    ones = np.ones((3, 2, 2, 2), np.float32)
    assert zero_flow_epe([ones[:1], ones[1:] * 4]) == pytest.approx((np.sqrt(2) + 2 * 4 * np.sqrt(2)) / 3)


def test_no_samples_or_wrong_shape_is_refused():
    with pytest.raises(DataError, match="no flow samples"):
        zero_flow_epe([])
    with pytest.raises(DataError, match=r"\[B,H,W,2\], got shape \(2, 3, 2\)"):
        zero_flow_epe([np.zeros((2, 3, 2))])
