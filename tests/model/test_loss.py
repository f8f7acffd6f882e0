"""MultiscaleSL1-1 + LinearSoftplus loss and EPE against closed-form values (eager, tiny tensors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from edgeflownas.errors import ConfigError
from edgeflownas.model.loss import UNCERTAINTY_EPS, UNCERTAINTY_FLOORS, mean_epe, multiscale_loss

WEIGHTS = (0.125, 0.25, 0.5)
SIZES = ((2, 3), (4, 6), (8, 12))


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def preds_with(flow_uv, log_scale):
    """Constant predictions at the three test sizes: flow channels = flow_uv, uncertainty channels = log_scale."""
    value = np.array(list(flow_uv) + [log_scale, log_scale], dtype=np.float32)
    return [tf.constant(np.broadcast_to(value, (1, h, w, 4))) for h, w in SIZES]


def constant_flow(u: float, v: float):
    return tf.constant(np.broadcast_to(np.array([u, v], np.float32), (1,) + SIZES[-1] + (2,)))


def test_perfect_flow_leaves_only_the_uncertainty_prior():
    terms = multiscale_loss(preds_with((1.5, -2.0), 0.0), constant_flow(1.5, -2.0), WEIGHTS)
    assert float(terms.flow_l1) == pytest.approx(0.0, abs=1e-6)
    assert float(terms.total) == pytest.approx(sum(WEIGHTS) * math.log(2.0), rel=1e-5)


@pytest.mark.parametrize("form", ["edgeflownet", "safe"])
def test_constant_error_matches_the_formula(form):
    """EdgeFlowNet's form term by term; the safe form adds its floor to the uncertainty denominator."""
    error, log_scale = 0.75, 0.3
    terms = multiscale_loss(preds_with((1.0 + error, -error), log_scale), constant_flow(1.0, 0.0), WEIGHTS, form)
    denominator = softplus(log_scale + UNCERTAINTY_EPS) + UNCERTAINTY_FLOORS[form]
    per_scale = error + error / denominator + softplus(log_scale)
    assert float(terms.flow_l1) == pytest.approx(sum(WEIGHTS) * error, rel=1e-5)
    assert float(terms.total) == pytest.approx(sum(WEIGHTS) * per_scale, rel=1e-5)


def loss_and_gradients(log_scale: float, form: str):
    """Total loss and its gradient w.r.t. the predictions, for a 3 px error and uncertainty channels at log_scale."""
    preds = [tf.Variable(p) for p in preds_with((4.0, 1.0), log_scale)]
    with tf.GradientTape() as tape:
        total = multiscale_loss(preds, constant_flow(1.0, 1.0), WEIGHTS, form).total
    return float(total), [g.numpy() for g in tape.gradient(total, preds)]


@pytest.mark.parametrize("log_scale", [-60.0, -100.0, -1e4])
def test_very_negative_uncertainty_stays_finite_only_in_the_safe_form(log_scale):
    """EdgeFlowNet's e / softplus(s) overflows float32 as s -> -inf (d/ds from s ~ -50, the value from s ~ -88)."""
    total, grads = loss_and_gradients(log_scale, "safe")
    assert math.isfinite(total) and all(np.isfinite(g).all() for g in grads)
    # Bounded: error / floor per pixel (3 px / 0.01), weighted by sum(WEIGHTS).
    assert total <= sum(WEIGHTS) * (3.0 + 3.0 / UNCERTAINTY_FLOORS["safe"] + 1.0)
    total, grads = loss_and_gradients(log_scale, "edgeflownet")
    assert not (math.isfinite(total) and all(np.isfinite(g).all() for g in grads))


def test_form_none_is_plain_multiscale_l1_with_no_gradient_to_the_uncertainty_channels():
    error = 0.75
    preds = [tf.Variable(p) for p in preds_with((1.0 + error, -error), -60.0)]
    with tf.GradientTape() as tape:
        terms = multiscale_loss(preds, constant_flow(1.0, 0.0), WEIGHTS, "none")
    assert float(terms.uncertainty) == 0.0
    assert float(terms.total) == pytest.approx(sum(WEIGHTS) * error, rel=1e-5)
    for grad in tape.gradient(terms.total, preds):
        assert np.all(grad.numpy()[..., 2:4] == 0) and np.any(grad.numpy()[..., 0:2] != 0)


def test_unknown_uncertainty_form_names_the_key():
    with pytest.raises(ConfigError, match="loss.uncertainty_form"):
        multiscale_loss(preds_with((0.0, 0.0), 0.0), constant_flow(0.0, 0.0), WEIGHTS, "log")


def test_labels_are_resized_not_rescaled_and_weights_select_scales():
    """A constant 4 px flow is 4 px at every scale (EdgeFlowNet resizes labels without scaling values)."""
    only_full = multiscale_loss(preds_with((4.0, 4.0), 0.0), constant_flow(4.0, 4.0), (0.0, 0.0, 1.0))
    assert float(only_full.flow_l1) == pytest.approx(0.0, abs=1e-6)
    coarse_wrong = preds_with((4.0, 4.0), 0.0)
    coarse_wrong[0] = coarse_wrong[0] + tf.constant([1.0, 1.0, 0.0, 0.0])
    assert float(multiscale_loss(coarse_wrong, constant_flow(4.0, 4.0), (0.0, 0.0, 1.0)).flow_l1) == 0.0
    assert float(multiscale_loss(coarse_wrong, constant_flow(4.0, 4.0), (1.0, 0.0, 0.0)).flow_l1) == pytest.approx(1.0)


def test_wrong_number_of_scale_weights_names_the_key():
    with pytest.raises(ConfigError, match="loss.scale_weights"):
        multiscale_loss(preds_with((0.0, 0.0), 0.0), constant_flow(0.0, 0.0), (1.0, 1.0))


def test_epe_is_the_mean_euclidean_distance():
    flow = tf.constant([[[[3.0, 4.0], [0.0, 0.0]]]])
    assert float(mean_epe(flow, tf.zeros_like(flow))) == pytest.approx(2.5)
