"""TensorBoard records of training: epoch scalars, and flow pictures (a numpy panel per sample, a ``Summary`` of PNGs).

For the trainer (it owns the FileWriter): after an evaluation, recalibrate BN
for a subnet, run ``net.flow`` on a few fixed validation samples, then::

    panels = [flow_panel(batch.img0[i], batch.flow[i], flow[i]) for i in range(len(flow))]
    writer.add_summary(flow_image_summary("flow/best_pool", panels), global_step)

Each panel is ``img0 | GT flow | predicted flow (GT's colour scale) | end-point error``.
PNG encoding uses OpenCV, so building a panel needs no TensorFlow; only
``flow_image_summary`` imports it (to build the protobuf).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from edgeflownas.flow_viz import endpoint_error, error_to_rgb, flow_magnitude_max, flow_to_rgb


def flow_panel(img0: np.ndarray, flow_gt: np.ndarray, flow_pred: np.ndarray,
               max_error: Optional[float] = None) -> np.ndarray:
    """uint8 [H, 4W, 3] RGB: img0, GT flow, predicted flow on the GT's scale, error map (0..max_error px)."""
    if img0.shape[:2] != flow_gt.shape[:2] or flow_gt.shape != flow_pred.shape:
        raise ValueError(f"shapes differ: img0 {img0.shape}, flow_gt {flow_gt.shape}, flow_pred {flow_pred.shape}")
    scale = flow_magnitude_max(flow_gt)
    error = endpoint_error(flow_pred, flow_gt)
    top = max_error if max_error is not None else max(float(np.percentile(error, 99)), 1e-6)
    return np.concatenate([np.asarray(img0, np.uint8), flow_to_rgb(flow_gt, scale), flow_to_rgb(flow_pred, scale),
                           error_to_rgb(error, top)], axis=1)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image."""
    import cv2

    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError(f"OpenCV could not encode an image of shape {image.shape} as PNG")
    return data.tobytes()


def flow_image_summary(tag: str, panels: Sequence[np.ndarray]):
    """A ``tf.compat.v1.Summary`` with one PNG image per panel, tagged ``<tag>/<index>``."""
    import tensorflow as tf

    values = []
    for index, panel in enumerate(panels):
        image = tf.compat.v1.Summary.Image(height=int(panel.shape[0]), width=int(panel.shape[1]), colorspace=3,
                                           encoded_image_string=encode_png(panel))
        values.append(tf.compat.v1.Summary.Value(tag=f"{tag}/{index}", image=image))
    return tf.compat.v1.Summary(value=values)


def scalar_summary(row: Mapping[str, Any]):
    """A ``tf.compat.v1.Summary`` of one history row's numbers (not its epoch, step or best flag)."""
    import tensorflow as tf

    values = [tf.compat.v1.Summary.Value(tag=scalar_tag(key), simple_value=float(value))
              for key, value in row.items() if key not in ("epoch", "global_step", "new_best")]
    return tf.compat.v1.Summary(value=values)


def scalar_tag(key: str) -> str:
    """TensorBoard tag of a history column: per-subnet EPEs, pool summary, or training figures."""
    if key.startswith("epe_"):
        return f"eval_subnet/{key}"
    if key.startswith(("mean_epe", "std_epe", "zero_flow", "fairness")):
        return f"eval/{key}"
    return f"train/{key}"
