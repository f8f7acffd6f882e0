"""EdgeFlowNet's ``MultiscaleSL1-1`` loss with ``LinearSoftplus`` uncertainty, and the EPE metric.

Per output scale i (weight w_i, default 0.125 / 0.25 / 0.5 for 1/4, 1/2, 1/1),
with the accumulated prediction split into flow f_i (channels 0:2) and
uncertainty s_i (channels 2:4), and the label g_i = bilinear resize of the
full-resolution ground truth to that scale (values are NOT rescaled: every
scale predicts flow in training-resolution pixels, as in EdgeFlowNet):

    L = sum_i w_i * ( mean|f_i - g_i|
                      + mean(|f_i - g_i| / softplus(s_i + 1e-3)) + mean(softplus(s_i)) )

This is EdgeFlowNet's ``LossMultiscaleUncertainity`` term by term (its
``loss_scales`` list has a fourth weight, 1, that its three outputs never use).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import tensorflow as tf

from edgeflownas.errors import ConfigError

# EdgeFlowNet's Eps inside the softplus of the uncertainty term.
UNCERTAINTY_EPS = 1e-3


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


def multiscale_loss(preds: Sequence[tf.Tensor], flow_gt: tf.Tensor, scale_weights: Sequence[float]) -> LossTerms:
    """MultiscaleSL1-1 + LinearSoftplus over accumulated predictions [B,h,w,4] (coarse to fine)."""
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
        uncertainty += weight * (
            tf.reduce_mean(error / tf.math.softplus(log_scale + UNCERTAINTY_EPS))
            + tf.reduce_mean(tf.math.softplus(log_scale))
        )
    return LossTerms(total=flow_l1 + uncertainty, flow_l1=flow_l1, uncertainty=uncertainty)


def mean_epe(flow: tf.Tensor, flow_gt: tf.Tensor) -> tf.Tensor:
    """Mean end-point error: Euclidean distance between predicted and true flow, averaged over pixels."""
    return tf.reduce_mean(tf.norm(flow - flow_gt, axis=-1))
