"""EdgeFlowNet's ``MultiscaleSL1-1`` loss with ``LinearSoftplus`` uncertainty, and the EPE metric.

Per output scale i (weight w_i, default 0.125 / 0.25 / 0.5 for 1/4, 1/2, 1/1),
with the accumulated prediction split into flow f_i (channels 0:2) and
uncertainty s_i (channels 2:4), and the label g_i = bilinear resize of the
full-resolution ground truth to that scale (values are NOT rescaled: every
scale predicts flow in training-resolution pixels, as in EdgeFlowNet):

    L = sum_i w_i * ( mean|f_i - g_i|
                      + mean(|f_i - g_i| / softplus(s_i + 1e-3)) + mean(softplus(s_i)) )

This is EdgeFlowNet's ``LossMultiscaleUncertainity`` term by term (its
``loss_scales`` list has a fourth weight, 1, that its three outputs never use)
when ``loss.uncertainty_form`` is ``edgeflownet``.

Loss form.  The default, ``safe``, adds a floor of 0.01 to the denominator:
``|f - g| / (softplus(s + 1e-3) + 0.01)``.  EdgeFlowNet's form is unbounded as
s goes negative: softplus(s) ~ exp(s), so value and gradients grow like
|f - g| * exp(-s).  Measured in float32 per unit error: value 2.2e4 at s = -10,
1.3e19 at s = -44; d/ds = -inf from s ~ -50; value inf and d/ds NaN from
s ~ -88 -- one such pixel makes the step's loss or gradient non-finite (the
8.1e21 loss / NaN grad norm seen on real pairs at lr 1e-3).  With the floor the
value is at most |f - g| / 0.01, d/d(flow) at most 100 and d/ds at most
|f - g| / 0.04 per pixel, for every finite s.  Effect on training: the per-pixel
optimum softplus(s) + 0.01 = sqrt(|f - g|) is EdgeFlowNet's optimum softplus(s)
= sqrt(|f - g|) shifted by 0.01 (identical minimum loss minus 0.01) whenever
|f - g| > 1e-4 px, i.e. for any realistic flow error; only the implied
uncertainty can no longer fall below 0.01 px.  ``none`` drops the uncertainty
term: L = sum_i w_i * mean|f_i - g_i| (channels 2:4 get no gradient); measured
against the others in studies/learnability/README.md.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import tensorflow as tf

from edgeflownas.errors import ConfigError

# EdgeFlowNet's Eps inside the softplus of the uncertainty term.
UNCERTAINTY_EPS = 1e-3
# Floor added to the uncertainty denominator per ``loss.uncertainty_form`` (see the module doc).
UNCERTAINTY_FLOORS = {"safe": 1e-2, "edgeflownet": 0.0}
UNCERTAINTY_FORMS = (*UNCERTAINTY_FLOORS, "none")


class LossTerms(NamedTuple):
    """The total loss and its two summands (both already scale-weighted)."""

    total: tf.Tensor
    flow_l1: tf.Tensor
    uncertainty: tf.Tensor


def resize_bilinear(x: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
    """Bilinear resize of an NHWC tensor to an explicit (height, width); values are not rescaled."""
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    return tf.image.resize(x, list(size), method="bilinear")


def multiscale_loss(preds: Sequence[tf.Tensor], flow_gt: tf.Tensor, scale_weights: Sequence[float],
                    uncertainty_form: str = "safe") -> LossTerms:
    """MultiscaleSL1-1 + LinearSoftplus over accumulated predictions [B,h,w,4] (coarse to fine)."""
    if uncertainty_form not in UNCERTAINTY_FORMS:
        raise ConfigError(f"loss.uncertainty_form is {uncertainty_form!r}: expected one of "
                          f"{sorted(UNCERTAINTY_FORMS)}")
    if len(preds) != len(scale_weights):
        raise ConfigError(
            f"loss.scale_weights has {len(scale_weights)} values {list(scale_weights)}: expected one per output "
            f"scale ({len(preds)})"
        )
    flow_l1 = tf.constant(0.0)
    uncertainty = tf.constant(0.0)
    for pred, weight in zip(preds, scale_weights):
        label = resize_bilinear(flow_gt, pred.shape[1:3])
        error = tf.abs(pred[..., 0:2] - label)
        log_scale = pred[..., 2:4]
        flow_l1 += weight * tf.reduce_mean(error)
        if uncertainty_form == "none":
            continue
        uncertainty += weight * (
            tf.reduce_mean(error / _denominator(log_scale, UNCERTAINTY_FLOORS[uncertainty_form]))
            + tf.reduce_mean(tf.math.softplus(log_scale))
        )
    return LossTerms(total=flow_l1 + uncertainty, flow_l1=flow_l1, uncertainty=uncertainty)


def _denominator(log_scale: tf.Tensor, floor: float) -> tf.Tensor:
    # No "+ 0.0" for EdgeFlowNet's form, so its graph stays op for op the original.
    scale = tf.math.softplus(log_scale + UNCERTAINTY_EPS)
    return scale + floor if floor else scale


def mean_epe(flow: tf.Tensor, flow_gt: tf.Tensor) -> tf.Tensor:
    """Mean end-point error: Euclidean distance between predicted and true flow, averaged over pixels."""
    return tf.reduce_mean(tf.norm(flow - flow_gt, axis=-1))
