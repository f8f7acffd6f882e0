"""Early stopping: patience, min_delta, minimum epochs, serialisable state, reset on resume."""

from __future__ import annotations

import json

import pytest

from edgeflownas.config_types import EarlyStopConfig
from edgeflownas.train.early_stop import EarlyStopper, EarlyStopState


def _run(metrics, patience=15, min_delta=0.002, min_epochs=0):
    stopper = EarlyStopper(EarlyStopConfig(patience, min_delta, min_epochs))
    for epoch, value in enumerate(metrics, start=1):
        if stopper.update(epoch, value).stop:
            return epoch, stopper
    return None, stopper


# A past FC2 run's history: best 0.625291 at epoch 12, later values never below 0.623291.
POST_MORTEM = [0.95, 0.9, 0.85, 0.8, 0.76, 0.72, 0.70, 0.68, 0.66, 0.65, 0.64, 0.625291] + [
    0.6233, 0.62330, 0.6240, 0.630, 0.623291, 0.6235, 0.70, 0.6238, 0.650, 0.6299,
    0.6241, 0.6300, 0.6233, 0.6250, 0.6232911,
] + [0.5] * 5


def test_post_mortem_case_stops_at_epoch_27():
    epoch, stopper = _run(POST_MORTEM)
    assert epoch == 27
    assert stopper.state.best == pytest.approx(0.625291) and stopper.state.best_epoch == 12
    assert stopper.state.bad_epochs == 15 and stopper.state.stopped_epoch == 27


def test_threshold_is_best_minus_min_delta_and_equal_is_not_an_improvement():
    stopper = EarlyStopper(EarlyStopConfig(15, 0.002, 0))
    stopper.update(1, 0.625291)
    assert stopper.threshold() == pytest.approx(0.623291)
    assert not stopper.update(2, 0.625291 - 0.002).improved
    assert stopper.update(3, 0.6232).improved


def test_min_epochs_before_early_stop_delays_the_stop():
    epoch, _ = _run(POST_MORTEM[:27] + [0.7] * 10, min_epochs=30)
    assert epoch == 30


def test_an_improvement_resets_the_count():
    epoch, _ = _run([1.0] + [1.0] * 4 + [0.5] + [0.5] * 5, patience=5)
    assert epoch == 11


def test_state_round_trips_through_json_and_resumes_counting():
    _, first = _run(POST_MORTEM[:20])
    saved = json.loads(json.dumps(first.state.to_dict()))
    resumed = EarlyStopper(EarlyStopConfig(15, 0.002, 0), EarlyStopState.from_dict(saved))
    stop_epoch = next(e for e in range(21, 28) if resumed.update(e, POST_MORTEM[e - 1]).stop)
    assert stop_epoch == 27


def test_reset_forgets_best_and_bad_epochs():
    _, stopper = _run(POST_MORTEM[:20])
    stopper.reset()
    assert stopper.state == EarlyStopState()
    assert stopper.update(21, 0.9).improved


def test_non_finite_metric_is_refused():
    with pytest.raises(ValueError, match="not finite"):
        EarlyStopper(EarlyStopConfig(15, 0.002, 0)).update(1, float("nan"))
