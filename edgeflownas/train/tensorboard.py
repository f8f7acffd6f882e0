"""TensorBoard records of training: the config, hparams, scalars per epoch and per step interval, flow pictures.

For the trainer (it owns the FileWriter): after an evaluation, recalibrate BN
for a subnet, run ``net.flow`` on a few fixed validation samples, then::

    panels = [flow_panel(batch.img0[i], batch.flow[i], flow[i]) for i in range(len(flow))]
    writer.add_summary(flow_image_summary("flow/best", panels), global_step)

Each panel is ``img0 | GT flow | predicted flow (GT's colour scale) | end-point error``;
with a ``caption`` (which subnet, its EPE) a band above it says what it shows.
At the start of a run, ``start_summaries`` give the resolved config as text
(``config/resolved``) and the hyper-parameters for TensorBoard's HParams
dashboard (``HPARAM_KEYS``: comparable across the trials of a sweep, which
share an output_root) with its metrics (``METRICS``: ``hp_metric``, the best
mean validation EPE so far, as Lightning names it, and ``eval/mean_epe``);
``step_scalar_summary`` holds the figures of the step log line
(``train_step/*``).

One tag set for every run kind, so supernet runs, retrains and sweeps overlay:
``eval/mean_epe``, ``eval/std_epe``, ``eval/zero_flow_epe``,
``eval_subnet/<arch name>``, ``train/loss_epoch_avg``,
``train/grad_norm_{before,after}_clip_epoch_avg``, ``train/lr``,
``train/fairness_gap``, ``train/skipped_steps``, ``hp_metric``; flow pictures
``flow/best/<i>`` (the best pool subnet, or a retrain's own subnet) and, in a
supernet run, ``flow/baseline/<i>``.  The pool size is in no tag (it is the
history CSV's ``mean_epe_<size>`` column).  PNG encoding uses OpenCV, so building a panel
needs no TensorFlow; only the ``*_summary`` functions import it (to build the
protobuf).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import yaml

from edgeflownas.config import flatten
from edgeflownas.flow_viz import endpoint_error, error_to_rgb, flow_magnitude_max, flow_to_rgb

# Resolved config keys shown as hparams: what a sweep varies (locations, runtime and SLURM knobs are not).
HPARAM_KEYS = ("experiment.seed", "train.", "model.", "loss.", "data.input_height", "data.input_width",
               "eval.pool_size", "eval.bn_recal_batches", "early_stop.")
CAPTION_HEIGHT = 16
HP_METRIC = "hp_metric"
# The HParams dashboard's metric columns: (tag, what it shows).
METRICS = ((HP_METRIC, "best mean validation EPE so far (px, lower is better)"),
           ("eval/mean_epe", "mean validation EPE of this evaluation (px)"))


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


def captioned(panel: np.ndarray, caption: str) -> np.ndarray:
    """``panel`` below a dark band with ``caption`` written in it (cut to the panel's width)."""
    import cv2

    band = np.full((CAPTION_HEIGHT, panel.shape[1], 3), 32, np.uint8)
    fits = max(1, panel.shape[1] // 7)  # ~7 px per character at this font scale
    text = caption if len(caption) <= fits else caption[:fits - 1] + "~"
    cv2.putText(band, text, (3, CAPTION_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([band, np.asarray(panel, np.uint8)], axis=0)


def flow_image_summary(tag: str, panels: Sequence[np.ndarray], caption: Optional[str] = None):
    """A ``tf.compat.v1.Summary`` with one PNG image per panel, tagged ``<tag>/<index>`` (captioned if given)."""
    import tensorflow as tf

    if caption is not None:
        panels = [captioned(panel, caption) for panel in panels]
    values = []
    for index, panel in enumerate(panels):
        image = tf.compat.v1.Summary.Image(height=int(panel.shape[0]), width=int(panel.shape[1]), colorspace=3,
                                           encoded_image_string=encode_png(panel))
        values.append(tf.compat.v1.Summary.Value(tag=f"{tag}/{index}", image=image))
    return tf.compat.v1.Summary(value=values)


def scalar_summary(row: Mapping[str, Any], best: Optional[float] = None):
    """A ``tf.compat.v1.Summary`` of one history row's numbers (not its epoch, step or best flag), and
    ``hp_metric`` = ``best`` (the best mean EPE so far) when given."""
    import tensorflow as tf

    values = [tf.compat.v1.Summary.Value(tag=scalar_tag(key), simple_value=float(value))
              for key, value in row.items() if key not in ("epoch", "global_step", "new_best")]
    if best is not None:
        values.append(tf.compat.v1.Summary.Value(tag=HP_METRIC, simple_value=float(best)))
    return tf.compat.v1.Summary(value=values)


def scalar_tag(key: str) -> str:
    """TensorBoard tag of a history column, the same for every run kind (no pool size, no repeated words)."""
    if key.startswith("epe_"):
        return f"eval_subnet/{key[len('epe_'):]}"
    for prefix in ("mean_epe", "std_epe"):
        if key.startswith(prefix):
            return f"eval/{prefix}"
    if key.startswith("zero_flow"):
        return f"eval/{key}"
    if key.startswith("train_"):
        return f"train/{key[len('train_'):]}"
    return f"train/{key}"


def step_scalar_summary(values: Mapping[str, float]):
    """A ``tf.compat.v1.Summary`` of the step log line's figures, tagged ``train_step/<name>``."""
    import tensorflow as tf

    return tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(tag=f"train_step/{key}", simple_value=float(value))
                                       for key, value in values.items()])


def hparams(values: Mapping[str, Any]) -> Dict[str, Any]:
    """{dotted key: value} of the resolved config's ``HPARAM_KEYS`` (lists as text, None left out)."""
    chosen = {}
    for key, value in flatten(values):
        if value is None or not any(key == k or (k.endswith(".") and key.startswith(k)) for k in HPARAM_KEYS):
            continue
        chosen[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return chosen


def start_summaries(values: Mapping[str, Any]) -> List[bytes]:
    """Serialized summaries written when a run starts: the resolved config as text, and the hparams."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api_pb2 as hparams_api_pb2
    from tensorboard.plugins.hparams import summary as hparams_summary

    text = yaml.safe_dump(dict(values), sort_keys=False, default_flow_style=False)
    # The text dashboard renders Markdown: an indented block keeps the YAML as it is.
    markdown = "\n".join("    " + line for line in text.splitlines())
    metadata = tf.compat.v1.SummaryMetadata(plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="text"))
    config = tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(
        tag="config/resolved", metadata=metadata, tensor=tf.make_tensor_proto(markdown))])
    chosen = hparams(values)
    experiment = hparams_summary.experiment_pb(
        hparam_infos=[_hparam_info(name, value) for name, value in chosen.items()],
        metric_infos=[hparams_api_pb2.MetricInfo(name=hparams_api_pb2.MetricName(tag=tag), display_name=tag,
                                                 description=text) for tag, text in METRICS])
    return [config.SerializeToString(), experiment.SerializeToString(),
            hparams_summary.session_start_pb(chosen).SerializeToString()]


def _hparam_info(name: str, value: Any):
    """The HParams dashboard's declaration of one hyper-parameter (its type from the value)."""
    from tensorboard.plugins.hparams import api_pb2

    kind = (api_pb2.DATA_TYPE_BOOL if isinstance(value, bool) else
            api_pb2.DATA_TYPE_FLOAT64 if isinstance(value, (int, float)) else api_pb2.DATA_TYPE_STRING)
    return api_pb2.HParamInfo(name=name, type=kind)
