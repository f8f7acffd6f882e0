"""The switchable EdgeFlowNet supernet (docs/design.md §3) in tf.compat.v1 graph mode.

Contract (other parts of efnas rely on exactly these names)::

    net = Supernet(model_cfg, loss_cfg, height, width, fixed_arch=None)

built once in the current default graph, which must be in graph mode
(``with tf.Graph().as_default():``) with control flow v2 (TensorFlow's
default; do not call ``tf.compat.v1.disable_v2_behavior()``).  ``height`` and
``width`` are the training resolution and must be multiples of 4.

Inputs (feed them):
    img0, img1   uint8 placeholders [None, H, W, 3], RGB, 0..255.
    flow_gt      float32 placeholder [None, H, W, 2], flow in training-resolution pixels.
    arch_code    int32 placeholder [9] (one option in {0,1,2} per block EB0..H4; checked
                 at run time).  ``None`` when ``fixed_arch`` is given.
    bn_mode      int32 scalar, placeholder_with_default(BN_INFER); feed BN_TRAIN (0):
                 batch stats + EMA update of the moving stats, BN_INFER (1): moving stats,
                 BN_RECAL (2): batch stats, added to the recalibration sums, no EMA.

Staged batch (training): ``stage_batch=True`` keeps batches in two slots of device
variables (``staging.py``): ``staging.stage_ops[slot]`` run with
``staging.feed((img0, img1, flow))`` copies one in (``staging.prefetch_op`` copies
one into the slot not read, in a run on the other), and the runs on it need only
``staging.slot``, ``arch_code`` and ``bn_mode``.  Then ``img0``, ``img1`` and
``flow_gt`` are the reads of the slot fed to ``staging.slot`` (still feedable,
as evaluation does) and ``staging.placeholders`` the placeholders above.

Outputs:
    preds        tuple of 3 tensors [B,H/4,W/4,4], [B,H/2,W/2,4], [B,H,W,4], accumulated across
                 scales (bilinear-upsampled previous prediction + this head's output);
                 channels 0:2 flow in training-resolution pixels at every scale, 2:4 the
                 LinearSoftplus uncertainty.
    flow         [B,H,W,2] = preds[2][..., 0:2];  uncertainty  preds[2][..., 2:4].
    loss         scalar MultiscaleSL1-1 + LinearSoftplus loss (loss_cfg.scale_weights and
                 loss_cfg.uncertainty_form, see ``loss.py``).
    loss_terms   LossTerms(total, flow_l1, uncertainty) (extension).
    epe          scalar mean end-point error at full resolution.

Batch norm:
    update_ops         list, EMPTY: the EMA updates run inside the forward pass whenever
                       bn_mode == BN_TRAIN (they live in tf.switch_case branches whose
                       tensors cannot be fetched).  Kept so ``sess.run([train_op] +
                       net.update_ops)`` reads as usual.  Every run that evaluates preds,
                       loss or gradients in BN_TRAIN updates the EMA of the layers on the path.
    bn_reset_recal_op  zero every layer's recalibration sums and counts.
    bn_apply_recal_op  moving stats := average of the batch means / batch variances
                       accumulated since the reset, for layers that saw >= 1 RECAL batch;
                       layers off the recalibrated path keep their moving stats.
    bn_moving_variables  every moving_mean / moving_variance variable.
    bn_recal_variables   the recalibration accumulators (extension).  They are ordinary
                       global variables, so a default Saver checkpoints them; their saved
                       value is scratch and never matters (reset before every use).

Variables:
    trainable_variables  conv kernels, biases, BN gamma/beta of every option built.
    kernel_variables     every conv kernel built (weight decay applies to these).
    variables            every variable the network created, sorted by name (extension).
    tf.gradients(loss, trainable_variables) gives ZERO tensors (not None) for the
    variables of unselected options in the supernet (they are inputs of the
    switch ops).
The supernet's variable set (names, shapes, dtypes) is the same for every arch
code; names start with ``supernet/``.  ``fixed_arch=code`` builds a static
network (no switching) of that subnet holding only the variables its path uses
(the first d ResBlocks of each depth block, the chosen kernel option's conv), with
exactly the supernet's names and shapes: a Saver over its ``variables`` restores
that subset from a supernet checkpoint by name (weight inheritance), and its
trainable parameters are the subnet's params (``cost.py``).

Inference network (export): ``Supernet(..., fixed_arch=code, inference_values=values)``
with ``values`` = {variable name without ':0': ndarray} (a checkpoint's or a live
session's) builds the same forward pass from constants with every BN in inference
mode folded into the conv before it (``layers.fold_batch_norm``; those convs get a
bias, the BNs are the identity): no variables, no BN statistics ops, no flow_gt,
loss or epe.  ``image_dtype`` (default uint8) may be float32 holding 0..255.
``flow`` and ``uncertainty`` (= preds[2][..., 2:4]) are its outputs.

Upsampling order (``model.upsample``): each of the 4 upsampling convs of the
skeleton (DB0/up, DB1/up, H1, H3) runs after the bilinear resize, at the output
resolution (``resize_conv``, the default), or before it, at the input resolution
(``conv_resize``: 1/4 of the multiply-adds, where EdgeFlowNet's transposed convs
work).  A BN after the conv (H1, H3) follows the resize either way; since a
bilinear resize is linear with weights summing to 1, that BN still folds into the
conv for export.  Variables are the same in both orders.

Only the selected branch of each block is computed: kernel choices are
``tf.switch_case`` over separate convs; a depth choice applies ResBlock 1 always
and ResBlocks 2 and 3 under ``tf.cond`` (depth d uses the first d ResBlocks).
The BN after a kernel choice (H1, H3) is shared by its options; BN momentum 0.9,
epsilon 1e-3 (``layers.py``).  Convs followed by BN have no bias (it would be
cancelled by the BN; EdgeFlowNet's layers had one); the others have.  Images enter as
float32 0..255 without mean/std normalisation, like EdgeFlowNet (its loader
only casts to float32), or divided by 255 with ``model.input_normalization: unit``
(docs/reliability.md "Loss form, input scaling and divergence"); img0 and img1 are concatenated into 6 channels (RGB;
EdgeFlowNet's cv2 loader fed BGR, which only matters for its own weights).
Also available: ``height``, ``width``, ``fixed_arch`` (tuple or None), ``convs``
and ``bns`` (the layer objects, each with ``.scope``).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from edgeflownas.config_types import LossConfig, ModelConfig
from edgeflownas.errors import CheckpointError, ConfigError
from edgeflownas.model.layers import (
    BN_INFER, BN_RECAL, BN_TRAIN, BatchNorm, ConstantConv2D, Conv2D, FoldedBatchNorm,
)
from edgeflownas.model.loss import mean_epe, multiscale_loss, resize_bilinear
from edgeflownas.model.staging import BatchStaging
from edgeflownas.nas.arch_codec import (
    BLOCK_NAMES, DEPTH_CHOICES, KERNEL_CHOICES, NUM_BLOCKS, NUM_OPTIONS, ArchCode, arch_name, parse_arch_code,
)

__all__ = ["Supernet", "BN_TRAIN", "BN_INFER", "BN_RECAL", "SCOPE", "PRED_CHANNELS"]

SCOPE = "supernet"
PRED_CHANNELS = 4
RES_KERNEL = 3
# model.input_normalization -> factor on the float pixels ("none": EdgeFlowNet's 0..255).
INPUT_SCALES = {"none": 1.0, "unit": 1.0 / 255.0}
# model.upsample: where each upsampling conv of the bilinear skeleton runs (module doc).
UPSAMPLE_ORDERS = ("resize_conv", "conv_resize")
# model.option_init: "tied" starts every option of a block computing the same function (module doc).
OPTION_INITS = ("independent", "tied_kernels", "tied")
# model.residual_init: "identity" starts every ResBlock as the identity (gamma 0 in its last BN), in any network.
RESIDUAL_INITS = ("random", "identity")


class ResBlock:
    """EdgeFlowNet ResBlock: Conv-BN-ReLU, Conv-BN, add the input, ReLU (3x3, stride 1)."""

    def __init__(self, name: str, channels: int, net: "Supernet", identity_at_init: bool = False) -> None:
        with tf.compat.v1.variable_scope(name):
            self.conv_a = net._conv("conv_a", RES_KERNEL, channels, channels, use_bias=False)
            self.bn_a = net._bn("bn_a", channels)
            self.conv_b = net._conv("conv_b", RES_KERNEL, channels, channels, use_bias=False)
            # gamma 0: the residual branch adds 0, so the block returns relu(x) = x for its (non-negative) input.
            self.bn_b = net._bn("bn_b", channels, zero_gamma=identity_at_init)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """Apply the block."""
        y = tf.nn.relu(self.bn_a(self.conv_a(x)))
        return tf.nn.relu(self.bn_b(self.conv_b(y)) + x)


class Supernet:
    """EdgeFlowNet MultiScaleResNet supernet (bilinear skeleton), switchable by ``arch_code``; see module doc."""

    def __init__(self, model_cfg: ModelConfig, loss_cfg: LossConfig, height: int, width: int,
                 fixed_arch: Optional[Sequence[int]] = None,
                 inference_values: Optional[Mapping[str, np.ndarray]] = None,
                 image_dtype: tf.DType = tf.uint8, stage_batch: bool = False) -> None:
        _check_graph_mode()
        _check_input_size(height, width)
        if model_cfg.skeleton != "bilinear":
            raise ConfigError(f"model.skeleton is {model_cfg.skeleton!r}: only 'bilinear' is implemented")
        if inference_values is not None and fixed_arch is None:
            raise ConfigError("an inference network (inference_values given) needs fixed_arch: one subnet")
        if model_cfg.upsample not in UPSAMPLE_ORDERS:
            raise ConfigError(f"model.upsample is {model_cfg.upsample!r}: expected one of {list(UPSAMPLE_ORDERS)}")
        if stage_batch and inference_values is not None:
            raise ConfigError("an inference network has no training batch to stage (stage_batch with inference_values)")
        self.height, self.width = height, width
        self.upsample = model_cfg.upsample
        self.input_scale = INPUT_SCALES[model_cfg.input_normalization]
        if model_cfg.option_init not in OPTION_INITS:
            raise ConfigError(f"model.option_init is {model_cfg.option_init!r}: expected one of {list(OPTION_INITS)}")
        if model_cfg.residual_init not in RESIDUAL_INITS:
            raise ConfigError(f"model.residual_init is {model_cfg.residual_init!r}: expected one of "
                              f"{list(RESIDUAL_INITS)}")
        self._identity_blocks = model_cfg.residual_init == "identity"
        # Tied options exist only where options do: a fixed arch or an inference network builds one path.
        one_path = fixed_arch is not None or inference_values is not None
        self._tied_kernels = model_cfg.option_init in ("tied", "tied_kernels") and not one_path
        self._tied = model_cfg.option_init == "tied" and not one_path
        self.fixed_arch: Optional[ArchCode] = parse_arch_code(fixed_arch) if fixed_arch is not None else None
        self.inference_values = inference_values
        self.img0 = tf.compat.v1.placeholder(image_dtype, [None, height, width, 3], name="img0")
        self.img1 = tf.compat.v1.placeholder(image_dtype, [None, height, width, 3], name="img1")
        if inference_values is None:  # created before the layers so seeded initial weights stay as they were
            self.flow_gt = tf.compat.v1.placeholder(tf.float32, [None, height, width, 2], name="flow_gt")
        self.bn_mode = tf.compat.v1.placeholder_with_default(tf.constant(BN_INFER, tf.int32), [], name="bn_mode")
        self.arch_code: Optional[tf.Tensor] = None
        self._code: Optional[tf.Tensor] = None
        if self.fixed_arch is None:
            self.arch_code = tf.compat.v1.placeholder(tf.int32, [NUM_BLOCKS], name="arch_code")
            self._code = _checked_code(self.arch_code)
        self.convs: List[Conv2D] = []
        self.bns: List[BatchNorm] = []
        self.staging: Optional[BatchStaging] = None
        with tf.compat.v1.variable_scope(SCOPE):
            self._create_layers(model_cfg)
            if stage_batch:  # created after the layers: the seeded initial weights do not depend on it
                self.staging = BatchStaging([self.img0, self.img1, self.flow_gt])
                self.img0, self.img1, self.flow_gt = self.staging.tensors
            self.preds: Tuple[tf.Tensor, tf.Tensor, tf.Tensor] = self._forward()
        self.flow = self.preds[2][..., 0:2]
        self.uncertainty = self.preds[2][..., 2:PRED_CHANNELS]
        if inference_values is None:
            self._training_outputs(loss_cfg)

    def _training_outputs(self, loss_cfg: LossConfig) -> None:
        """Ground truth, loss, EPE and the BN bookkeeping (not part of an inference network)."""
        self.loss_terms = multiscale_loss(self.preds, self.flow_gt, loss_cfg.scale_weights, loss_cfg.uncertainty_form)
        self.loss = self.loss_terms.total
        self.epe = mean_epe(self.flow, self.flow_gt)
        self.update_ops: List[tf.Operation] = []
        self.bn_reset_recal_op = tf.group(*[bn.reset_recal_op() for bn in self.bns], name="bn_reset_recal")
        self.bn_apply_recal_op = tf.group(*[bn.apply_recal_op() for bn in self.bns], name="bn_apply_recal")
        self.bn_moving_variables = [v for bn in self.bns for v in bn.moving_variables]
        self.bn_recal_variables = [v for bn in self.bns for v in bn.recal_variables]
        self.kernel_variables = [conv.kernel for conv in self.convs]
        self.trainable_variables = [v for v in self.variables if v.trainable]

    @property
    def variables(self) -> List[tf.Variable]:
        """Every variable of the network, sorted by name."""
        created = [v for conv in self.convs for v in conv.variables]
        created += [v for bn in self.bns for v in [bn.gamma, bn.beta] + bn.moving_variables + bn.recal_variables]
        return sorted(created, key=lambda v: v.name)

    # -- layers (all variables are created here, outside any control flow) --

    def _conv(self, name: str, kernel: int, cin: int, cout: int, stride: int = 1, use_bias: bool = True,
              initial_kernel: Optional[tf.Tensor] = None) -> Conv2D:
        if self.inference_values is not None:
            scope = _scope_of(name)
            conv = ConstantConv2D(scope, self._value(f"{scope}/kernel", (kernel, kernel, cin, cout)),
                                  self._value(f"{scope}/bias", (cout,)) if use_bias else None, stride)
        else:
            conv = Conv2D(name, kernel, cin, cout, stride, use_bias, initial_kernel)
        self.convs.append(conv)
        return conv

    def _bn(self, name: str, channels: int, zero_gamma: bool = False) -> BatchNorm:
        if self.inference_values is not None:
            # Every BN directly follows the conv it normalises (built just before it), so it folds into that one.
            scope = _scope_of(name)
            self.convs[-1].fold(scope, *[self._value(f"{scope}/{key}", (channels,))
                                         for key in ("gamma", "beta", "moving_mean", "moving_variance")])
            return FoldedBatchNorm(scope)
        bn = BatchNorm(name, channels, self.bn_mode, zero_gamma)
        self.bns.append(bn)
        return bn

    def _value(self, name: str, shape: Tuple[int, ...]) -> np.ndarray:
        """The value of variable ``name`` for an inference network, checked against the shape it must have."""
        if name not in self.inference_values:
            raise CheckpointError(f"variable {name} of subnet {arch_name(self.fixed_arch)} is missing from the "
                                  "weights given: are they a checkpoint of this model (same model config)?")
        value = np.asarray(self.inference_values[name])
        if value.shape != tuple(shape):
            raise CheckpointError(f"variable {name} has shape {list(value.shape)}, the model needs {list(shape)}: "
                                  "the weights come from a different model config (init_neurons, expansion)")
        return value

    def _res_blocks(self, block: str, channels: int) -> List[ResBlock]:
        """The stage's ResBlocks: all three in the supernet, the first d for a fixed arch of depth d."""
        count = max(DEPTH_CHOICES)
        if self.fixed_arch is not None:
            count = DEPTH_CHOICES[self.fixed_arch[BLOCK_NAMES.index(block)]]
        with tf.compat.v1.variable_scope(block):
            return [ResBlock(f"res{index}", channels, self,
                             identity_at_init=self._identity_blocks or (self._tied and index > 0))
                    for index in range(count)]

    def _kernel_options(self, block: str, cin: int, cout: int, use_bias: bool) -> Dict[int, Conv2D]:
        """option -> conv: every kernel option in the supernet, only the chosen one for a fixed arch.

        Tied (``model.option_init``): the larger kernels start as the smallest one zero-padded.
        """
        options = range(NUM_OPTIONS)
        if self.fixed_arch is not None:
            options = [self.fixed_arch[BLOCK_NAMES.index(block)]]
        convs: Dict[int, Conv2D] = {}
        with tf.compat.v1.variable_scope(block):
            for o in options:
                initial = _zero_padded(convs[0].kernel, KERNEL_CHOICES[o]) if self._tied_kernels and o > 0 else None
                convs[o] = self._conv(f"k{KERNEL_CHOICES[o]}", KERNEL_CHOICES[o], cin, cout, use_bias=use_bias,
                                      initial_kernel=initial)
        return convs

    def _create_layers(self, cfg: ModelConfig) -> None:
        growth = cfg.expansion_factor
        c0 = cfg.init_neurons
        c1, c2, c3 = c0 * growth, c0 * growth ** 2, c0 * growth ** 3
        head1, head3 = c1 // growth, c1 // growth ** 2
        with tf.compat.v1.variable_scope("stem"):
            self.stem0, self.stem0_bn = self._conv("conv0", 7, 6, c0, 2, False), self._bn("bn0", c0)
            self.stem1, self.stem1_bn = self._conv("conv1", 5, c0, c1, 2, False), self._bn("bn1", c1)
        self.eb0, self.eb0_down = self._res_blocks("EB0", c1), self._conv("EB0/down", 3, c1, c2, 2)
        self.eb1, self.eb1_down = self._res_blocks("EB1", c2), self._conv("EB1/down", 3, c2, c3, 2)
        self.db0, self.db0_up = self._res_blocks("DB0", c3), self._conv("DB0/up", 3, c3, c2)
        self.db1, self.db1_up = self._res_blocks("DB1", c2), self._conv("DB1/up", 3, c2, c1)
        self.h0 = self._kernel_options("H0", c1, PRED_CHANNELS, use_bias=True)
        self.h1, self.h1_bn = self._kernel_options("H1", c1, head1, use_bias=False), self._bn("H1/bn", head1)
        self.h2 = self._kernel_options("H2", head1, PRED_CHANNELS, use_bias=True)
        self.h3, self.h3_bn = self._kernel_options("H3", head1, head3, use_bias=False), self._bn("H3/bn", head3)
        self.h4 = self._kernel_options("H4", head3, PRED_CHANNELS, use_bias=True)

    # -- forward --

    def _forward(self) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        h, w = self.height, self.width
        quarter = (h // 4, w // 4)
        eighth = _half(*quarter)
        images = tf.concat([tf.cast(self.img0, tf.float32), tf.cast(self.img1, tf.float32)], axis=-1)
        if self.input_scale != 1.0:
            images = images * self.input_scale
        x = tf.nn.relu(self.stem0_bn(self.stem0(images)))
        x = tf.nn.relu(self.stem1_bn(self.stem1(x)))
        x = self.eb0_down(self._depth(0, self.eb0, x))
        x = self.eb1_down(self._depth(1, self.eb1, x))
        x = self._upsampled(self.db0_up, self._depth(2, self.db0, x), eighth)
        x = self._upsampled(self.db1_up, self._depth(3, self.db1, x), quarter)
        out0 = self._kernel(4, self.h0, x)
        y = tf.nn.relu(self.h1_bn(self._upsampled(_bind_kernel(self, 5, self.h1), x, (h // 2, w // 2))))
        out1 = self._kernel(6, self.h2, y)
        z = tf.nn.relu(self.h3_bn(self._upsampled(_bind_kernel(self, 7, self.h3), y, (h, w))))
        out2 = self._kernel(8, self.h4, z)
        pred0 = tf.identity(out0, name="pred_quarter")
        pred1 = tf.identity(resize_bilinear(pred0, (h // 2, w // 2)) + out1, name="pred_half")
        pred2 = tf.identity(resize_bilinear(pred1, (h, w)) + out2, name="pred_full")
        return pred0, pred1, pred2

    def _upsampled(self, conv: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor, size: Tuple[int, int]) -> tf.Tensor:
        """One upsampling conv of the skeleton in the ``model.upsample`` order (the BN after it, if any, follows)."""
        if self.upsample == "conv_resize":
            return resize_bilinear(conv(x), size)
        return conv(resize_bilinear(x, size))

    def _kernel(self, block_index: int, convs: Dict[int, Conv2D], x: tf.Tensor) -> tf.Tensor:
        """Apply the conv of the selected kernel option (only that one is computed)."""
        if self.fixed_arch is not None:
            return convs[self.fixed_arch[block_index]](x)
        branches = [_bind(convs[option], x) for option in range(NUM_OPTIONS)]
        return tf.switch_case(self._code[block_index], branches, name=BLOCK_NAMES[block_index])

    def _depth(self, block_index: int, blocks: List[ResBlock], x: tf.Tensor) -> tf.Tensor:
        """Apply the first d ResBlocks, d = the selected depth (blocks past d are not computed)."""
        x = blocks[0](x)
        for extra in range(1, len(blocks)):
            if self.fixed_arch is None:
                x = tf.cond(self._code[block_index] >= extra, _bind(blocks[extra], x), _bind(tf.identity, x),
                            name=f"{BLOCK_NAMES[block_index]}_depth{extra + 1}")
            else:  # a fixed arch built exactly the blocks it uses
                x = blocks[extra](x)
        return x


def _bind(layer: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor) -> Callable[[], tf.Tensor]:
    """A zero-argument branch function applying ``layer`` to ``x`` (avoids late binding in loops)."""
    return lambda: layer(x)


def _bind_kernel(net: Supernet, block_index: int, convs: Dict[int, Conv2D]) -> Callable[[tf.Tensor], tf.Tensor]:
    """The selected kernel option of a block as a one-argument layer."""
    return lambda x: net._kernel(block_index, convs, x)


def _zero_padded(kernel: tf.Variable, size: int) -> tf.Tensor:
    """The initial value of ``kernel`` (k x k x cin x cout) zero-padded to size x size: the same SAME-padded conv."""
    pad = (size - int(kernel.shape[0])) // 2
    return tf.pad(kernel.initial_value, [[pad, pad], [pad, pad], [0, 0], [0, 0]])


def _scope_of(name: str) -> str:
    """Full scope name a layer called ``name`` gets in the current variable scope."""
    return f"{tf.compat.v1.get_variable_scope().name}/{name}"


def _half(height: int, width: int) -> Tuple[int, int]:
    """Output size of a SAME-padded stride-2 conv (ceil division)."""
    return math.ceil(height / 2), math.ceil(width / 2)


def _checked_code(code: tf.Tensor) -> tf.Tensor:
    """The arch code with a run-time check that every entry is in {0,1,2}."""
    valid = tf.reduce_all(tf.logical_and(code >= 0, code < NUM_OPTIONS))
    check = tf.debugging.Assert(valid, ["arch_code value must be in {0,1,2}, got", code])
    with tf.control_dependencies([check]):
        return tf.identity(code, name="arch_code_checked")


def _check_graph_mode() -> None:
    if tf.executing_eagerly():
        raise RuntimeError("Supernet needs graph mode: build it inside 'with tf.Graph().as_default():'")
    if not tf.compat.v1.control_flow_v2_enabled():
        raise RuntimeError("Supernet needs control flow v2: do not call tf.compat.v1.disable_v2_behavior()")


def _check_input_size(height: int, width: int) -> None:
    if height % 4 or width % 4 or height <= 0 or width <= 0:
        raise ConfigError(
            f"input size {height}x{width}: data.input_height and data.input_width must be positive "
            "multiples of 4 (the 1/4-scale head needs exact sizes)"
        )
