"""Conv and shared batch-norm layers from ``tf.nn`` ops and ``tf.compat.v1.get_variable``.

Variables are created when a layer object is constructed and read when it is
applied, so a network can create every option's variables up front (outside
any ``tf.switch_case``) and apply only the selected layers inside the branches.

``BatchNorm`` runs in one of three modes chosen at run time by an int32 scalar
tensor:

- ``BN_TRAIN``: normalise with the batch statistics and update the moving
  statistics by an exponential moving average (momentum ``BN_MOMENTUM``);
- ``BN_INFER``: normalise with the moving statistics; nothing is written;
- ``BN_RECAL``: normalise with the batch statistics and add them to
  recalibration sums; ``apply_recal_op`` later sets the moving statistics to
  the true average of the accumulated batch statistics (the per-batch means
  and per-batch variances are averaged, as in Once-for-All's
  ``set_running_statistics``).

All writes happen inside the layer's forward computation (as control
dependencies of its output), because a layer inside an untaken
``tf.switch_case`` branch has no tensor that could be fetched from outside.
A write in a mode that does not own it assigns the value it read, so it
changes nothing.

For an inference graph (export) ``ConstantConv2D`` holds fixed weights and
``FoldedBatchNorm`` is the identity: the BN's inference-mode affine map is
folded into the preceding conv by ``fold_batch_norm`` (docs/design.md §8).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from edgeflownas.model.bn_modes import BN_INFER, BN_RECAL, BN_TRAIN  # noqa: F401  (public here too)

# Higher than Keras' 0.99 default because the moving statistics of a shared
# BN follow a different path every step; evaluation recalibrates them anyway.
BN_MOMENTUM = 0.9
# The epsilon of TF1's batch_normalization layer, which EdgeFlowNet used.
BN_EPSILON = 1e-3


def _variable(name: str, shape: Sequence[int], initializer, trainable: bool) -> tf.Variable:
    """A resource variable; ``initializer`` is an initializer object or a tensor of exactly ``shape``."""
    if isinstance(initializer, tf.Tensor):
        if initializer.shape.as_list() != list(shape):
            raise ValueError(f"initial value of {name} has shape {initializer.shape.as_list()}, expected {list(shape)}")
        return tf.compat.v1.get_variable(name, dtype=tf.float32, initializer=initializer, trainable=trainable,
                                         use_resource=True)
    return tf.compat.v1.get_variable(
        name, shape=list(shape), dtype=tf.float32, initializer=initializer, trainable=trainable, use_resource=True
    )


class Conv2D:
    """A 2-D convolution (SAME padding) with its kernel and optional bias.

    ``initial_kernel``: a tensor the kernel starts from (default: Glorot uniform).
    """

    def __init__(self, name: str, kernel_size: int, in_channels: int, out_channels: int, stride: int = 1,
                 use_bias: bool = True, initial_kernel: Optional[tf.Tensor] = None) -> None:
        self.name = name
        self.kernel_size = kernel_size
        self.stride = stride
        with tf.compat.v1.variable_scope(name) as scope:
            self.scope = scope.name
            self.kernel = _variable(
                "kernel", (kernel_size, kernel_size, in_channels, out_channels),
                tf.compat.v1.glorot_uniform_initializer() if initial_kernel is None else initial_kernel,
                trainable=True,
            )
            self.bias = _variable("bias", (out_channels,), tf.compat.v1.zeros_initializer(), True) if use_bias else None

    @property
    def variables(self) -> List[tf.Variable]:
        """The layer's trainable variables."""
        return [self.kernel] + ([self.bias] if self.bias is not None else [])

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """Apply the convolution (and bias) to an NHWC tensor."""
        y = tf.nn.conv2d(x, self.kernel, strides=self.stride, padding="SAME")
        if self.bias is not None:
            y = tf.nn.bias_add(y, self.bias)
        return y


class BatchNorm:
    """Batch normalisation with TRAIN / INFER / RECAL modes selected by a scalar tensor.

    ``zero_gamma``: the scale starts at 0 instead of 1 (the layer's output starts at beta = 0).
    """

    def __init__(self, name: str, channels: int, mode: tf.Tensor, zero_gamma: bool = False) -> None:
        self.name = name
        self.mode = mode
        with tf.compat.v1.variable_scope(name) as scope:
            self.scope = scope.name
            self.gamma = _variable("gamma", (channels,), (tf.compat.v1.zeros_initializer() if zero_gamma
                                                           else tf.compat.v1.ones_initializer()), True)
            self.beta = _variable("beta", (channels,), tf.compat.v1.zeros_initializer(), True)
            self.moving_mean = _variable("moving_mean", (channels,), tf.compat.v1.zeros_initializer(), False)
            self.moving_variance = _variable("moving_variance", (channels,), tf.compat.v1.ones_initializer(), False)
            self.recal_mean_sum = _variable("recal_mean_sum", (channels,), tf.compat.v1.zeros_initializer(), False)
            self.recal_variance_sum = _variable("recal_variance_sum", (channels,), tf.compat.v1.zeros_initializer(), False)
            self.recal_count = _variable("recal_count", (), tf.compat.v1.zeros_initializer(), False)

    @property
    def moving_variables(self) -> List[tf.Variable]:
        """moving_mean and moving_variance."""
        return [self.moving_mean, self.moving_variance]

    @property
    def recal_variables(self) -> List[tf.Variable]:
        """The recalibration accumulators (scratch state, reset before each use)."""
        return [self.recal_mean_sum, self.recal_variance_sum, self.recal_count]

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """Normalise an NHWC tensor per channel according to the current mode."""
        batch_mean, batch_variance = tf.nn.moments(x, axes=[0, 1, 2])
        moving_mean = self.moving_mean.read_value()
        moving_variance = self.moving_variance.read_value()
        use_batch = tf.not_equal(self.mode, BN_INFER)
        mean = tf.where(use_batch, batch_mean, moving_mean)
        variance = tf.where(use_batch, batch_variance, moving_variance)
        y = tf.nn.batch_normalization(x, mean, variance, self.beta, self.gamma, BN_EPSILON)
        with tf.control_dependencies(self._updates(tf.stop_gradient(batch_mean), tf.stop_gradient(batch_variance),
                                                   moving_mean, moving_variance)):
            return tf.identity(y)

    def _updates(self, batch_mean: tf.Tensor, batch_variance: tf.Tensor, moving_mean: tf.Tensor,
                 moving_variance: tf.Tensor) -> List[tf.Operation]:
        is_train = tf.equal(self.mode, BN_TRAIN)
        is_recal = tf.equal(self.mode, BN_RECAL)
        decay = 1.0 - BN_MOMENTUM
        return [
            self.moving_mean.assign(tf.where(is_train, moving_mean - decay * (moving_mean - batch_mean), moving_mean),
                                    read_value=False),
            self.moving_variance.assign(
                tf.where(is_train, moving_variance - decay * (moving_variance - batch_variance), moving_variance),
                read_value=False),
            self.recal_mean_sum.assign_add(tf.where(is_recal, batch_mean, tf.zeros_like(batch_mean)),
                                           read_value=False),
            self.recal_variance_sum.assign_add(tf.where(is_recal, batch_variance, tf.zeros_like(batch_variance)),
                                               read_value=False),
            self.recal_count.assign_add(tf.where(is_recal, 1.0, 0.0), read_value=False),
        ]

    def reset_recal_op(self) -> tf.Operation:
        """Zero this layer's recalibration sums and count."""
        return tf.group(*[v.assign(tf.zeros_like(v), read_value=False) for v in self.recal_variables])

    def apply_recal_op(self) -> tf.Operation:
        """Moving stats := accumulated average, if this layer saw at least one RECAL batch."""
        count = self.recal_count.read_value()
        seen = count > 0.0
        denominator = tf.maximum(count, 1.0)
        return tf.group(
            self.moving_mean.assign(tf.where(seen, self.recal_mean_sum / denominator, self.moving_mean),
                                    read_value=False),
            self.moving_variance.assign(tf.where(seen, self.recal_variance_sum / denominator, self.moving_variance),
                                        read_value=False),
        )


def fold_batch_norm(kernel: np.ndarray, bias: Optional[np.ndarray], gamma: np.ndarray, beta: np.ndarray,
                    mean: np.ndarray, variance: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Conv then BN in inference mode as one conv: w' = w*s, b' = (b - mu)*s + beta with s = gamma/sqrt(var+eps)."""
    scale = gamma.astype(np.float64) / np.sqrt(variance.astype(np.float64) + BN_EPSILON)
    shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
    folded_bias = shift if bias is None else bias.astype(np.float64) * scale + shift
    return (kernel.astype(np.float64) * scale).astype(np.float32), folded_bias.astype(np.float32)


class ConstantConv2D:
    """A convolution with fixed weights (an inference graph); a following BN can be folded into it."""

    def __init__(self, scope: str, kernel: np.ndarray, bias: Optional[np.ndarray], stride: int) -> None:
        self.scope = scope
        self.kernel_value = np.asarray(kernel, np.float32)
        self.bias_value = None if bias is None else np.asarray(bias, np.float32)
        self.stride = stride
        self.folded: Optional[str] = None

    def fold(self, bn_scope: str, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
             variance: np.ndarray) -> None:
        """Fold the BN that follows this conv into its kernel and bias (once)."""
        if self.folded is not None:
            raise ValueError(f"{self.scope} already has {self.folded} folded in; cannot fold {bn_scope} too")
        self.kernel_value, self.bias_value = fold_batch_norm(self.kernel_value, self.bias_value, gamma, beta,
                                                             mean, variance)
        self.folded = bn_scope

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """Apply the convolution (and bias) to an NHWC tensor."""
        y = tf.nn.conv2d(x, tf.constant(self.kernel_value), strides=self.stride, padding="SAME")
        if self.bias_value is not None:
            y = tf.nn.bias_add(y, tf.constant(self.bias_value))
        return y


class FoldedBatchNorm:
    """A BN already folded into the preceding ``ConstantConv2D``: the identity."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """Return ``x`` unchanged (the normalisation lives in the conv's weights)."""
        return x
