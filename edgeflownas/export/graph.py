"""The inference graph of one subnet (BN folded, constants only) written as a SavedModel with one signature.

I/O contract of every exported format (batch 1):

- inputs ``img0``, ``img1``: RGB images [1, H, W, 3], uint8 0..255 (the int8
  TFLite file quantises them with scale 1, zero point 0, so its inputs are the
  same uint8 pixels);
- outputs ``flow`` [1, H, W, 2] (u, v) in pixels of the H x W input, and
  ``uncertainty`` [1, H, W, 2], the LinearSoftplus uncertainty channels the
  network was trained with (larger = less certain, loss.py), unitless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Tuple

import numpy as np

from edgeflownas.config_types import LossConfig, ModelConfig
from edgeflownas.nas.arch_codec import ArchCode
from edgeflownas.quiet import quiet

SIGNATURE = "serving_default"
TAGS = ["serve"]
INPUTS = ("img0", "img1")
OUTPUTS = ("flow", "uncertainty")
_ANY_LOSS = LossConfig(scale_weights=(0.125, 0.25, 0.5))


def write_saved_model(path: Path, model_cfg: ModelConfig, code: ArchCode, values: Mapping[str, np.ndarray],
                      height: int, width: int, float_inputs: bool = False) -> None:
    """SavedModel of the folded subnet at ``path``; ``float_inputs`` takes float32 0..255 (int8 conversion)."""
    import tensorflow as tf

    from edgeflownas.model.supernet import Supernet

    with tf.Graph().as_default() as graph:
        net = Supernet(model_cfg, _ANY_LOSS, height, width, fixed_arch=code, inference_values=values,
                       image_dtype=tf.float32 if float_inputs else tf.uint8)
        outputs = {"flow": tf.identity(net.flow, name="flow"),
                   "uncertainty": tf.identity(net.uncertainty, name="uncertainty")}
        with quiet():  # build_tensor_info's deprecation warning
            signature = tf.compat.v1.saved_model.predict_signature_def({"img0": net.img0, "img1": net.img1},
                                                                       outputs)
        with tf.compat.v1.Session(graph=graph) as session:
            builder = tf.compat.v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(session, TAGS, signature_def_map={SIGNATURE: signature},
                                                 strip_default_attrs=True)
            builder.save()


class SavedModelRunner:
    """The serving signature of an exported SavedModel, called on one uint8 image pair."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        self._model = tf.saved_model.load(str(path))
        self._call = self._model.signatures[SIGNATURE]

    def __call__(self, img0: np.ndarray, img1: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(flow [H,W,2], uncertainty [H,W,2]) of one uint8 [H,W,3] pair at the model's size."""
        out = self._call(img0=self._tf.constant(img0[None]), img1=self._tf.constant(img1[None]))
        return out["flow"].numpy()[0], out["uncertainty"].numpy()[0]
