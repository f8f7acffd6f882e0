"""Optical-flow pictures: the Middlebury colour wheel (Baker et al., ICCV 2007) and error maps; and the
end-point error itself (``endpoint_error``), the one numpy EPE of the package: eval's per-pixel check and
outlier rates, the native-resolution EPE, export's and infer's scores and the trivial predictors' EPE all
average it.

Hue encodes direction, saturation encodes magnitude relative to a
normalisation radius: zero flow is white, flow of the normalisation length is
the fully saturated wheel colour, and longer flow (possible only with an
explicit ``max_flow``) is drawn darker.  Directions in image coordinates
(x right, y down): right = red, down = yellow-green side, left = cyan,
up = blue/violet, as in Middlebury's ``flowToColor`` and the ``flow_vis``
package.  Pure numpy, so the trainer can call it for TensorBoard images
without importing matplotlib.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

# Hue segments of the wheel: red-yellow, yellow-green, green-cyan, cyan-blue, blue-magenta, magenta-red.
_SEGMENTS = (("RY", 15), ("YG", 6), ("GC", 4), ("CB", 11), ("BM", 13), ("MR", 6))
# Flow components with |value| above this are "unknown" in Middlebury .flo files.
UNKNOWN_FLOW = 1e9
# Anchor colours of the error-map colour scale (dark blue -> violet -> orange -> pale yellow).
_ERROR_ANCHORS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                           [245, 125, 21], [250, 193, 39], [252, 255, 164]], np.float64)


def color_wheel() -> np.ndarray:
    """The 55 wheel colours, float [55, 3] RGB in 0..255, starting at red and turning through yellow."""
    rows = []
    for name, count in _SEGMENTS:
        ramp = np.floor(255.0 * np.arange(count) / count)
        full, zero = np.full(count, 255.0), np.zeros(count)
        rows.append({
            "RY": (full, ramp, zero), "YG": (255.0 - ramp, full, zero), "GC": (zero, full, ramp),
            "CB": (zero, 255.0 - ramp, full), "BM": (ramp, zero, full), "MR": (full, zero, 255.0 - ramp),
        }[name])
    return np.concatenate([np.stack(channels, axis=1) for channels in rows], axis=0)


def _valid_mask(flow: np.ndarray) -> np.ndarray:
    return np.all(np.isfinite(flow), axis=-1) & np.all(np.abs(flow) < UNKNOWN_FLOW, axis=-1)


def flow_magnitude_max(flow: np.ndarray) -> float:
    """Largest flow length over the known pixels (0.0 if there are none)."""
    flow = np.asarray(flow, np.float64)
    valid = _valid_mask(flow)
    if not valid.any():
        return 0.0
    return float(np.sqrt((flow[valid] ** 2).sum(axis=-1)).max())


def flow_to_rgb(flow: np.ndarray, max_flow: Optional[float] = None) -> np.ndarray:
    """Colour-wheel picture uint8 [..., H, W, 3] of flow [..., H, W, 2] in pixels.

    ``max_flow`` is the length drawn fully saturated (use the ground truth's
    maximum for every panel of one sample so they compare); by default the
    largest known flow length of the input.  Unknown pixels (NaN/inf or
    Middlebury's >1e9) are black.
    """
    flow = np.asarray(flow, np.float64)
    if flow.shape[-1] != 2:
        raise ValueError(f"flow must have 2 channels (u, v) in its last axis, got shape {flow.shape}")
    valid = _valid_mask(flow)
    u = np.where(valid, flow[..., 0], 0.0)
    v = np.where(valid, flow[..., 1], 0.0)
    scale = flow_magnitude_max(flow) if max_flow is None else float(max_flow)
    if scale > 0:
        u, v = u / scale, v / scale
    wheel = color_wheel()
    ncols = len(wheel)
    radius = np.sqrt(u ** 2 + v ** 2)
    angle = np.arctan2(-v, -u) / np.pi
    position = (angle + 1.0) / 2.0 * (ncols - 1)
    k0 = np.floor(position).astype(np.int64)
    k1 = (k0 + 1) % ncols
    frac = (position - k0)[..., None]
    colour = ((1.0 - frac) * wheel[k0] + frac * wheel[k1]) / 255.0
    inside = (radius <= 1.0)[..., None]
    colour = np.where(inside, 1.0 - radius[..., None] * (1.0 - colour), colour * 0.75)
    colour = np.where(valid[..., None], colour, 0.0)
    return np.floor(255.0 * colour).astype(np.uint8)


def endpoint_error(pred: np.ndarray, gt: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Per-pixel end-point error [..., H, W] between two flows [..., H, W, 2] (``gt`` may be one (u, v) vector),
    computed in ``dtype``.

    float32 serves float32 flows where speed counts (export's formats, the native-resolution EPE): each error is
    within a float32 rounding of the float64 one.
    """
    diff = np.asarray(pred, dtype) - np.asarray(gt, dtype)
    return np.sqrt((diff ** 2).sum(axis=-1))


def error_to_rgb(error: np.ndarray, max_error: Optional[float] = None) -> np.ndarray:
    """Error map uint8 [..., H, W, 3]: 0 is near black, ``max_error`` (default the maximum) pale yellow."""
    error = np.asarray(error, np.float64)
    top = float(np.nanmax(error)) if max_error is None else float(max_error)
    scaled = np.clip(error / top, 0.0, 1.0) if top > 0 else np.zeros_like(error)
    scaled = np.nan_to_num(scaled, nan=0.0)
    position = scaled * (len(_ERROR_ANCHORS) - 1)
    k0 = np.minimum(np.floor(position).astype(np.int64), len(_ERROR_ANCHORS) - 2)
    frac = (position - k0)[..., None]
    colour = (1.0 - frac) * _ERROR_ANCHORS[k0] + frac * _ERROR_ANCHORS[k0 + 1]
    return np.round(colour).astype(np.uint8)


def wheel_legend(size: int = 101) -> np.ndarray:
    """A square uint8 [size, size, 3] picture of the wheel itself (legend): flow = offset from the centre."""
    half = (size - 1) / 2.0
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    flow = np.stack([xs - half, ys - half], axis=-1)
    picture = flow_to_rgb(flow, max_flow=half)
    outside = np.sqrt(((flow / half) ** 2).sum(axis=-1)) > 1.0
    picture[outside] = 255
    return picture
