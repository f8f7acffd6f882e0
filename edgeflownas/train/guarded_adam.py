"""Adam that applies a step only when a flag is true, without control flow: a refused step leaves every number as it is.

The training step's divergence guard (``graph`` module doc) must leave the
weights, Adam's slots ``m`` and ``v`` and its ``beta1_power``/``beta2_power``
untouched when a cycle is not finite, and advance ``global_step`` either way.
A ``tf.cond`` around ``apply_gradients`` does that, but control flow v2 makes
the branch a function graph capturing every variable and slot: about a quarter
of the training graph's construction time.  ``GuardedAdam`` instead runs the
same fused ``ResourceApplyAdam`` kernels on every step and makes a refused step
a no-op through their inputs:

- finite step: gradient, learning rate, beta1 and beta2 are exactly what
  ``tf.compat.v1.train.AdamOptimizer`` passes (a ``tf.where`` selects the very
  same float32 values), so the step is bit-identical to an unguarded one;
- refused step: gradient 0 (the clipped gradient may be NaN; ``where`` does
  not propagate it), beta1 = beta2 = 1 and learning rate 0.  The kernel then
  computes ``m += (0 - m) * (1 - 1)``, ``v += (0 - v) * (1 - 1)`` and
  ``var -= m * 0 / (sqrt(v) + eps)``: it adds a zero to every element, and
  ``beta_power *= 1`` keeps the powers.  ``m``, ``v`` and the weights are
  finite (every applied step was finite, checkpoints are checked), so these
  zeros are exact.  The one value adding zero could change is a weight
  holding -0.0 with a negative ``m`` (it would become +0.0, the same number);
  IEEE rounding gives -0.0 only from -0.0, and efnas never initialises a
  weight to it.

``tests/train/test_guarded_adam.py`` checks it bit for bit against Adam under
a ``tf.cond``, finite and refused steps alike.
"""

from __future__ import annotations

from typing import Iterable, Tuple

import tensorflow as tf


class GuardedAdam(tf.compat.v1.train.AdamOptimizer):
    """``tf.compat.v1.train.AdamOptimizer`` whose update is the identity when the scalar bool ``apply`` is false."""

    def __init__(self, apply: tf.Tensor, learning_rate, beta1: float, beta2: float, epsilon: float) -> None:
        # The float betas stay the constructor's: they are also the initial values of beta1_power and beta2_power.
        super().__init__(learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon)
        self._apply = apply

    def _prepare(self) -> None:
        """Adam's hyper-parameter tensors, neutral (lr 0, betas 1) on a refused step."""
        super()._prepare()
        self._lr_t = tf.where(self._apply, self._lr_t, tf.zeros_like(self._lr_t))
        self._beta1_t = tf.where(self._apply, self._beta1_t, tf.ones_like(self._beta1_t))
        self._beta2_t = tf.where(self._apply, self._beta2_t, tf.ones_like(self._beta2_t))

    def apply_if(self, grads_and_vars: Iterable[Tuple[tf.Tensor, tf.Variable]],
                 global_step: tf.Variable) -> tf.Operation:
        """One Adam step when ``apply`` holds, none otherwise; ``global_step`` advances by one either way."""
        safe = [(tf.where(self._apply, grad, tf.zeros_like(grad)), var) for grad, var in grads_and_vars]
        return self.apply_gradients(safe, global_step=global_step)
